"""README.md documents every flag, environment variable, setting, config key and command."""

import argparse
import dataclasses
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference_club.agent.config import (
    _BACKEND_KEYS,
    _MODEL_KEYS,
    _TOP_LEVEL_KEYS,
    parse_config,
)
from inference_club.agent.settings import AgentSettings
from inference_club.cli.main import build_parser
from inference_club.gateway.settings import GatewaySettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
ENV_VARIABLE = re.compile(r"INFERENCE_CLUB_[A-Z_]+[A-Z]")


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command path with its parser, each once (aliases skipped), the root included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield from commands(child, (*path, name))


def leaf_commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The commands that run something (no further subcommands)."""
    return [
        (path, parser)
        for path, parser in commands(build_parser())
        if path
        and not any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
    ]


def flags(parser: argparse.ArgumentParser) -> set[str]:
    """The long options of one command, without --help."""
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_there_are_commands_to_check():
    """The command tree is walked: serve, agent, demo and the admin commands are all found."""
    paths = {" ".join(path) for path, _parser in leaf_commands()}
    assert {"serve", "agent", "demo", "users add", "keys create", "providers add"} <= paths


@pytest.mark.parametrize(
    "path", [" ".join(path) for path, _parser in leaf_commands()], ids=lambda path: path
)
def test_every_command_is_in_the_readme(path: str):
    """Each command appears in README.md as `inference-club <command>`."""
    assert f"inference-club {path}" in README


@pytest.mark.parametrize(
    "flag",
    sorted({flag for _path, parser in leaf_commands() for flag in flags(parser)}),
)
def test_every_flag_is_in_the_readme(flag: str):
    """Each long option of every command appears in README.md, in backticks or a command line."""
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", README), flag


def test_every_serve_flag_is_in_the_settings_table():
    """Each flag of `serve` has its own row in the gateway's settings table."""
    serve = dict(leaf_commands())[("serve",)]
    for flag in flags(serve):
        assert f"| `{flag}` |" in README, flag


@pytest.mark.parametrize(
    "variable",
    sorted(
        {
            variable
            for _path, parser in leaf_commands()
            for action in parser._actions
            for variable in ENV_VARIABLE.findall(action.help or "")
        }
    ),
)
def test_every_environment_variable_is_in_the_readme(variable: str):
    """Each INFERENCE_CLUB_* variable a flag's help names appears in README.md."""
    assert f"`{variable}`" in README


@pytest.mark.parametrize(
    "setting",
    sorted(
        {field.name for field in dataclasses.fields(GatewaySettings)}
        | {field.name for field in dataclasses.fields(AgentSettings)}
    ),
)
def test_every_setting_is_in_the_readme(setting: str):
    """Each field of the gateway's and the agent's settings objects is named in README.md."""
    assert f"`{setting}`" in README


@pytest.mark.parametrize("key", sorted(_TOP_LEVEL_KEYS | _BACKEND_KEYS | _MODEL_KEYS))
def test_every_agent_config_key_is_in_the_readme(key: str):
    """Each key the agent's TOML config accepts is named in README.md."""
    assert f"`{key}`" in README


def test_the_agent_config_example_is_valid():
    """The README's TOML example is accepted by the agent's own config parser."""
    [example] = re.findall(r"^```toml\n(.*?)^```", README, re.S | re.M)
    config = parse_config(tomllib.loads(example))
    assert config.server == "https://club.example.org"
    assert {backend.service_type for backend in config.backends} == {None, "stt", "tts"}
    assert config.models["kokoro"].voices == ("af_heart", "am_michael")
