import base64
import json
from pathlib import Path

import pytest

from routecli.errors import UsageError
from routecli.inputs import read_image, read_jsonl, stable_id

SAMPLES = Path(__file__).resolve().parent.parent / "sample_prompts"
PNG = (SAMPLES / "images" / "chart.png").read_bytes()


def parse(*lines, base_dir=None):
    return list(read_jsonl([json.dumps(x) if not isinstance(x, str) else x for x in lines], base_dir))


def test_prompt_and_options():
    [line] = parse({"id": "a", "prompt": "hi", "system": "s", "tier": "cheap", "agent": "bot",
                    "tags": ["x", "y"], "max_tokens": 5, "temperature": 0, "metadata": {"k": 1}})
    assert line.error is None and line.id == "a" and line.metadata == {"k": 1}
    r = line.request
    assert (r.last_user_text, r.system, r.tier, r.agent, r.tags, r.max_tokens) == ("hi", "s", "cheap", "bot", ("x", "y"), 5)


def test_openai_messages_with_system_tools_and_data_url_image():
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    [line] = parse({"id": 7, "messages": [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]},
    ], "tools": [{"type": "function", "function": {"name": "f"}}]})
    r = line.request
    assert line.id == "7" and r.system == "be terse" and len(r.messages) == 3
    assert r.messages[-1].images[0].media_type == "image/png" and r.tools[0]["function"]["name"] == "f"


def test_image_paths_are_relative_to_the_file():
    lines = list(read_jsonl((SAMPLES / "vision.jsonl").read_text().splitlines(), SAMPLES))
    assert all(line.error is None and line.request.has_images for line in lines)


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"id": "x"}, 'needs "prompt"'),
        ({"prompt": 3}, 'needs "prompt"'),
        ({"prompt": "hi", "max_tokens": "ten"}, '"max_tokens" has the wrong type'),
        ('{"prompt": "hi", "temperature": NaN}', '"temperature" must be a finite number'),
        ('{"prompt": "hi", "temperature": -Infinity}', '"temperature" must be a finite number'),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "no user message"),
        ({"prompt": "hi", "image": "missing.png"}, "Cannot read image"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}, "data: URLs"),
    ],
)
def test_bad_lines_are_reported_with_their_number_and_the_rest_goes_on(line, fragment, tmp_path):
    good, bad, good2 = parse({"prompt": "first"}, line, {"prompt": "third"}, base_dir=tmp_path)
    assert good.error is None and good2.error is None
    assert bad.request is None and bad.error.startswith("line 2: ") and fragment in bad.error


def test_ids_are_stable_and_blank_lines_skipped():
    a = parse('{"prompt": "same"}', "", '{"prompt": "same"}')
    assert [x.line_no for x in a] == [1, 3]
    assert a[0].id == stable_id(1, '{"prompt": "same"}') and a[0].id != a[1].id
    assert parse('{"prompt": "same"}')[0].id == a[0].id


def test_not_utf8_line():
    [line] = list(read_jsonl([b"\xff\xfe{}"]))
    assert "not UTF-8" in line.error


def test_read_image_checks_content_not_name(tmp_path):
    fake = tmp_path / "x.png"
    fake.write_text("hello")
    with pytest.raises(UsageError, match="not a PNG"):
        read_image(fake)
    real = tmp_path / "y.bin"
    real.write_bytes(PNG)
    assert read_image(real).media_type == "image/png"
