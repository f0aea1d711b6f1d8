"""Signals are named facts; a few fixed examples pin what each one notices."""

from routecli.domain import Image, Message, Request
from routecli.routing.signals import extract_signals


def signals(text, **kw):
    messages = kw.pop("messages", None) or (Message("user", text),)
    return extract_signals(Request(messages, **kw))


def test_code_math_reasoning_and_steps():
    s = signals("First, prove the theorem step by step. Then:\n1. derive x\n2. refactor the python code\n```python\nx = 1 + 2\n```")
    assert s["code_blocks"] == 1 and s["code_langs"] == "python" and s["code_words"] >= 1
    assert s["math"] >= 2 and "prove" in s["reasoning"] and "step by step" in s["reasoning"]
    assert s["steps"] >= 4


def test_simple_tasks_and_question_shape():
    s = signals("Translate 'hello' into French. What is the capital of Peru?")
    assert "translate" in s["simple"] and "capital of" in s["simple"]
    assert s["questions"] == 1 and s["sentences"] == 2


def test_domains():
    assert signals("Review this contract clause for liability under GDPR")["domain"] == "legal"
    assert signals("Write a haiku and a short story about rain")["domain"] == "creative"
    assert signals("Should I put my portfolio into stocks given the interest rate?")["domain"] == "financial"
    assert signals("Hello there")["domain"] == ""


def test_agentic_tools_files_turns_images():
    image = Image("image/png", "aGk=")
    s = signals("", messages=(
        Message("user", "look at src/app.py and README.md"),
        Message("assistant", "ok"),
        Message("tool", '{"result": 1}'),
        Message("user", "now describe this screenshot", (image,)),
    ), system="You are an agent. You have access to tools.")
    assert s["agentic"] is True and s["tool_results"] == 1 and s["turns"] == 2
    assert s["file_refs"] == 2 and s["images"] == 1 and s["vision_words"] == 1


def test_constraints_and_length():
    s = signals("Write it without loops. It must be exactly 3 lines and do not use imports. " * 2)
    assert s["constraints"] >= 6
    big = signals("x" * 500_000)
    assert big["chars"] == 500_000 and big["est_tokens"] == 125_000
