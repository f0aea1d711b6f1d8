"""Where the ledger lives: --db > ROUTECLI_DB > store.db in the config > the app dir; labels stay indexable."""

from typer.testing import CliRunner

from routecli.cli import app
from routecli.config import db_location

runner = CliRunner()


def test_the_config_file_can_name_the_ledger(isolated_home, tmp_path, monkeypatch):
    assert db_location() == str(isolated_home / "routecli.db")
    elsewhere = tmp_path / "team.db"
    assert runner.invoke(app, ["config", "set", "store.db", str(elsewhere)]).exit_code == 0
    assert db_location() == str(elsewhere)
    assert runner.invoke(app, ["ask", "--dry-run", "hi"]).exit_code == 0
    assert elsewhere.exists() and not (isolated_home / "routecli.db").exists()
    monkeypatch.setenv("ROUTECLI_DB", str(tmp_path / "env.db"))
    assert db_location() == str(tmp_path / "env.db") and db_location("cli.db") == "cli.db"


def test_a_password_in_the_config_is_refused():
    result = runner.invoke(app, ["config", "set", "store.db", "postgresql://me:s3cret@db.example/ledger"])
    assert result.exit_code == 2 and "PGPASSWORD" in result.stderr and "s3cret" not in result.stderr


def test_agent_and_tag_labels_have_limits():
    for args in (["--agent", "a" * 101], ["--tag", "t" * 101], *[[x for i in range(17) for x in ("--tag", str(i))]]):
        result = runner.invoke(app, ["ask", "--dry-run", *args, "hi"])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
