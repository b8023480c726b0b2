"""``inference-club users set-password`` and ``invites``: dashboard accounts from the shell."""

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from inference_club.cli.options import add_data_option, env, fail

if TYPE_CHECKING:
    from inference_club.store import Store

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Action = Callable[["Store", argparse.Namespace], Awaitable[None]]
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def register(commands: "Subcommands") -> None:
    """Add ``users set-password`` (to the existing ``users`` command) and ``invites``."""
    users = commands.choices.get("users")
    user_commands = (
        _subcommands(users)
        if users is not None
        else commands.add_parser("users", help="manage members").add_subparsers(
            dest="users_command", metavar="COMMAND", required=True
        )
    )
    password = user_commands.add_parser(
        "set-password",
        help="Set a member's dashboard password",
        description="Set a member's dashboard password, read from a prompt (asked twice) or, "
        "when stdin is not a terminal, from its first line. Never from the command line, "
        "where other users could read it. Signs the member out of other sessions. "
        "Example: inference-club users set-password alice",
    )
    add_data_option(password)
    password.add_argument("name", metavar="NAME", help="the member")
    password.set_defaults(handler=_handler(_set_password))

    invites = commands.add_parser(
        "invites",
        help="Invite new members to the dashboard",
        description="Invite new members to the dashboard.",
    ).add_subparsers(dest="invites_command", metavar="COMMAND", required=True)
    create = invites.add_parser(
        "create",
        help="Create a single-use invite link",
        description="Create a single-use invite link and print it alone on stdout. "
        "Whoever opens it picks a name and a password. It expires after 7 days.",
    )
    add_data_option(create)
    create.add_argument("--admin", action="store_true", help="the new member will be an admin")
    create.add_argument(
        "--public-url",
        default=env("PUBLIC_URL", DEFAULT_PUBLIC_URL),
        help="the gateway's public base URL the link starts with "
        f"(env INFERENCE_CLUB_PUBLIC_URL, default {DEFAULT_PUBLIC_URL})",
    )
    create.set_defaults(handler=_handler(_create_invite))


def _subcommands(parser: argparse.ArgumentParser) -> "Subcommands":
    for action in parser._actions:  # argparse offers no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return action
    msg = f"{parser.prog} has no subcommands"
    raise RuntimeError(msg)


def read_password(prompt: str = "New password: ") -> str:
    """A password from the terminal (typed twice) or the first line of piped stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        msg = "the two passwords differ"
        raise ValueError(msg)
    return first


def _handler(action: Action) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        try:
            from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

            from inference_club.store import Store, StoreError, default_database_url  # noqa: PLC0415
        except ImportError as exc:
            return fail(
                f"this command needs the 'gateway' extra ({exc.name} is missing): "
                "pip install 'inference-club[gateway]'"
            )

        async def run() -> None:
            store = await Store.open(args.database_url or default_database_url(args.data))
            try:
                await action(store, args)
            finally:
                await store.close()

        try:
            asyncio.run(run())
        except (StoreError, ValueError) as error:
            return fail(str(error))
        except (SQLAlchemyError, OSError) as error:
            return fail(f"database error: {type(error).__name__}")
        return 0

    return handle


async def _set_password(store: "Store", args: argparse.Namespace) -> None:
    # Checked before prompting, so a typo in the name does not cost typing a password.
    await store.get_user(args.name)
    password = read_password()
    await store.set_password(args.name, password)
    print(f"set the password of {args.name}", file=sys.stderr)


async def _create_invite(store: "Store", args: argparse.Namespace) -> None:
    invite, token = await store.create_invite(is_admin=args.admin)
    base = str(args.public_url).rstrip("/")
    print(f"{base}/join/{token}")
    expires = invite.expires_at.strftime("%Y-%m-%d %H:%M UTC") if invite.expires_at else "never"
    role = "an admin" if invite.is_admin else "a member"
    print(f"invite {invite.id} for {role}; single use, expires {expires}", file=sys.stderr)
