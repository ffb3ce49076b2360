"""The `staysync` command line: help texts, and `staysync token` for local runs and tests.

Help is read in-process (argparse exits with 0); the token command runs as a real process
(`python -m app.cli`), so exit codes and stderr are what a shell sees. No database.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.auth import FirebaseVerifier, Principal, Role
from app.cli import main, parser
from app.server import uvicorn_options
from app.settings import PROJECT_ROOT, Settings
from tests.support import EMULATOR_HOST, PROJECT_ID

NEVER_FETCHED = "http://127.0.0.1:9/never-fetched"
COMMANDS = ("serve", "migrate", "seed", "token", "sync", "notify", "supplier-sim")


def staysync(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APP_ENV": "test", "FIREBASE_PROJECT_ID": PROJECT_ID}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=30,
    )


def help_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.fixture
def verifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[FirebaseVerifier]:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", EMULATOR_HOST)
    verifier = FirebaseVerifier(
        Settings(
            app_env="test",
            firebase_project_id=PROJECT_ID,
            firebase_auth_emulator_host=EMULATOR_HOST,
            firebase_cert_url=NEVER_FETCHED,
        )
    )
    yield verifier
    verifier.close()


# --- help ---------------------------------------------------------------------------------------


def test_help_lists_every_command_with_a_summary(capsys):
    text = help_of(capsys)

    assert text.startswith("usage: staysync [-h] COMMAND ...")
    assert "hotel allotments" in text
    for command, sub in subcommands().items():
        assert command in COMMANDS
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(command))
        # a long name (supplier-sim) has its summary on the next line
        summary = lines[at] if lines[at].strip() != command else f"{command} {lines[at + 1].strip()}"
        assert len(summary.split(maxsplit=1)) == 2, f"{command} has no summary in --help"
    assert set(subcommands()) == set(COMMANDS)
    assert "DATABASE_URL" in text  # where configuration comes from


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_and_every_option_is_explained(capsys, command):
    text = help_of(capsys, command)

    assert text.startswith(f"usage: staysync {command} ")
    for action in subcommands()[command]._actions:
        assert action.help, f"staysync {command}: {action.dest} has no help text"
        for option in action.option_strings:
            assert option in text


def test_token_help_warns_it_is_for_emulator_mode_only(capsys):
    text = " ".join(help_of(capsys, "token").split())

    assert "FIREBASE_AUTH_EMULATOR_HOST" in text
    assert "never in production" in text
    assert "--role {admin,operator,agent}" in text


def test_no_command_is_a_usage_error():
    result = staysync()

    assert result.returncode == 2
    assert "the following arguments are required: COMMAND" in result.stderr


def test_console_script_answers_help():
    script = Path(sys.executable).parent / "staysync"
    if not script.exists():
        pytest.skip("the staysync console script is not installed in this environment")

    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)

    assert result.returncode == 0
    assert result.stdout.startswith("usage: staysync")


# --- token --------------------------------------------------------------------------------------


async def test_admin_token_verifies_as_admin(verifier):
    result = staysync("token", "--role", "admin")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # only the token, so $(staysync token …) just works
    assert await verifier.verify(token) == Principal(uid="dev-admin", role=Role.ADMIN, agency_code=None)


def test_agent_without_agency_is_refused_clearly():
    result = staysync("token", "--role", "agent")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--agency" in result.stderr
    assert result.stderr.startswith("staysync token: ")
    assert "Traceback" not in result.stderr


async def test_agent_token_carries_the_agency_code_upper_case(verifier):
    result = staysync("token", "--role", "agent", "--agency", "suntravel", "--hours", "1")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    principal = await verifier.verify(token)
    assert principal == Principal(uid="dev-agent-SUNTRAVEL", role=Role.AGENT, agency_code="SUNTRAVEL")
    claims = claims_of(token)
    assert claims["agency"] == "SUNTRAVEL"
    assert claims["aud"] == PROJECT_ID
    assert claims["exp"] - claims["iat"] == 3600


def test_unknown_role_is_a_usage_error():
    result = staysync("token", "--role", "superuser")

    assert result.returncode == 2
    assert "invalid choice: 'superuser'" in result.stderr


@pytest.mark.parametrize(("env", "access_log", "logged"), [
    ("production", None, False), ("development", None, True), ("test", None, True),
    ("production", True, True), ("development", False, False),
])
def test_the_access_log_is_off_in_production_unless_asked_for(env, access_log, logged):
    settings = Settings(app_env=env, access_log=access_log, firebase_auth_emulator_host=None)
    assert uvicorn_options(settings)["access_log"] is logged
