"""The dependency lines from ARCHITECTURE.md, and the imports start-up must not pay for."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "routecli"
HEAVY = ("httpx", "sqlalchemy", "sqlmodel", "genai_prices", "rich", "pydantic")


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(sub: str = "") -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def test_core_never_imports_typer_or_rich_at_module_level():
    for path in modules():
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        bad = {n for n in imports(path, top_level_only=True) if n.split(".")[0] in ("typer", "rich", "click")}
        assert not bad, f"{path.name} imports {bad} at module level"


def test_providers_and_store_do_not_know_each_other():
    for path in modules("providers"):
        assert not any(n.startswith("routecli.store") for n in imports(path, top_level_only=False)), path
    for path in modules("store"):
        assert not any(n.startswith("routecli.providers") for n in imports(path, top_level_only=False)), path


def test_routing_is_pure():
    for path in modules("routing"):
        found = imports(path, top_level_only=False)
        assert not found & {"httpx", "sqlite3", "socket", "routecli.store", "routecli.providers"}, path


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.strip().splitlines()[-1].split(","))


def test_help_imports_nothing_heavy():
    loaded = loaded_after(
        "import sys\nsys.argv = ['routecli', '--help']\nfrom routecli.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_dry_run_skips_http_and_price_data():
    loaded = loaded_after(
        "import sys\nsys.argv = ['routecli', 'ask', '--dry-run', 'hi']\nfrom routecli.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert "sqlmodel" in loaded  # it did record the decision
    assert not loaded & {"httpx", "genai_prices", "rich"}, loaded & {"httpx", "genai_prices", "rich"}
