"""The README opens with the two commands, and CI runs exactly the second one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```bash", "the README must open with a bash block"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_opens_with_install_and_run_then_install_and_test():
    commands = readme_commands()
    assert len(commands) == 2
    run, test = commands
    assert "pip install -e ." in run and "python -m study." in run
    assert 'pip install -e ".[test]"' in test and "python -m pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
