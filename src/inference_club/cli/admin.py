"""``inference-club users|keys|providers|groups``: the operator's commands on the database."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

from inference_club.cli.options import add_data_option, fail

if TYPE_CHECKING:
    from inference_club.store import Store

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Action = Callable[["Store", argparse.Namespace], Awaitable[None]]
# Checks the arguments before the database is opened; returns a problem or None.
Check = Callable[[argparse.Namespace], str | None]
DEFAULT = "default"

_DATA_EPILOG = (
    "Point --data or --database-url at the gateway's database; "
    "it is safe to run while the gateway is running."
)


def register(commands: "Subcommands") -> None:
    """Add the ``users``, ``keys``, ``providers`` and ``groups`` commands."""
    _register_users(commands)
    _register_keys(commands)
    _register_providers(commands)
    _register_groups(commands)
    _register_sharing(commands)
    _register_usage(commands)


# -- command tree ---------------------------------------------------------------------------


def _group(commands: "Subcommands", name: str, summary: str) -> "Subcommands":
    parser = commands.add_parser(name, help=summary, description=summary + ".")
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def _command(
    commands: "Subcommands",
    name: str,
    summary: str,
    action: Action,
    *,
    details: str = "",
    aliases: Sequence[str] = (),
    check: Check | None = None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=summary,
        description=f"{summary}. {details}".strip(),
        epilog=_DATA_EPILOG,
    )
    add_data_option(parser)
    parser.set_defaults(handler=_handler(action, check))
    return parser


def _register_users(commands: "Subcommands") -> None:
    users = _group(commands, "users", "Add, list and limit the club's members")
    add = _command(users, "add", "Add a member", _users_add, details="Never prompts.")
    add.add_argument("name", metavar="NAME", help="1-64 letters, digits, '_', '.' or '-'")
    add.add_argument("--admin", action="store_true", help="make the member an administrator")
    _command(users, "list", "List every member with their limits", _users_list)
    limit = _command(
        users,
        "set-limit",
        "Set a member's limits",
        _users_set_limit,
        details=f"Give at least one limit; '{DEFAULT}' goes back to the gateway's default.",
        check=_some_limit_given,
    )
    limit.add_argument("name", metavar="NAME", help="the member")
    limit.add_argument(
        "--rpm",
        type=_limit(int),
        metavar="N",
        default=argparse.SUPPRESS,
        help="requests per minute, per API key",
    )
    limit.add_argument(
        "--daily-tokens",
        type=_limit(int),
        metavar="N",
        default=argparse.SUPPRESS,
        help="tokens a day",
    )
    limit.add_argument(
        "--daily-audio-seconds",
        type=_limit(float),
        metavar="S",
        default=argparse.SUPPRESS,
        help="seconds of audio a day",
    )
    limit.add_argument(
        "--daily-images",
        type=_limit(int),
        metavar="N",
        default=argparse.SUPPRESS,
        help="images a day",
    )


def _register_keys(commands: "Subcommands") -> None:
    keys = _group(commands, "keys", "Create, list and revoke API keys")
    create = _command(
        keys,
        "create",
        "Create an API key for a member",
        _keys_create,
        details="Prints the key alone on stdout, once: it is stored only as a hash. "
        "Example: KEY=$(inference-club keys create alice)",
    )
    create.add_argument("user", metavar="USER", help="the member who owns the key")
    create.add_argument("--name", default="default", help="a label for the key (default: default)")
    listing = _command(keys, "list", "List a member's keys (never the keys themselves)", _keys_list)
    listing.add_argument("user", metavar="USER", help="the member")
    revoke = _command(
        keys,
        "revoke",
        "Revoke an API key",
        _keys_revoke,
        details="Name it by the prefix 'keys list' shows, or any unique start of it "
        "(6 characters or more).",
    )
    revoke.add_argument("prefix", metavar="KEY_PREFIX", help="e.g. ic_AbCdEfGhI")


def _register_providers(commands: "Subcommands") -> None:
    providers = _group(commands, "providers", "Register and list providers (agent machines)")
    add = _command(
        providers,
        "add",
        "Register a provider for a member",
        _providers_add,
        details="Prints the provider token alone on stdout, once; give it to the agent "
        "(inference-club agent --token, or INFERENCE_CLUB_TOKEN).",
        aliases=["create"],
    )
    add.add_argument("user", metavar="USER", help="the member who owns the machine")
    add.add_argument("name", metavar="NAME", help="the provider name, shown as owned_by")
    listing = _command(providers, "list", "List providers", _providers_list)
    listing.add_argument("--user", metavar="USER", help="only this member's providers")


def _register_groups(commands: "Subcommands") -> None:
    groups = _group(commands, "groups", "Manage groups that models can be shared with")
    add = _command(groups, "add", "Create a group", _groups_add)
    add.add_argument("name", metavar="NAME", help="1-64 letters, digits, '_', '.' or '-'")
    for name, summary, action in (
        ("add-member", "Put a member in a group", _groups_add_member),
        ("remove-member", "Take a member out of a group", _groups_remove_member),
    ):
        member = _command(groups, name, summary, action)
        member.add_argument("group", metavar="GROUP")
        member.add_argument("user", metavar="USER")
    _command(groups, "list", "List groups and their members", _groups_list)


_LIMIT_FIELDS = (
    ("requests_per_minute", "rpm"),
    ("daily_tokens", "daily_tokens"),
    ("daily_audio_seconds", "daily_audio_seconds"),
    ("daily_images", "daily_images"),
)


def _some_limit_given(args: argparse.Namespace) -> str | None:
    if any(hasattr(args, flag) for _, flag in _LIMIT_FIELDS):
        return None
    return "give at least one of --rpm, --daily-tokens, --daily-audio-seconds, --daily-images"


def _limit(kind: type[int] | type[float]) -> Callable[[str], int | float | None]:
    """An argparse type for a limit: a number of zero or more, or 'default' for None."""

    def parse(text: str) -> int | float | None:
        if text == DEFAULT:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or '{DEFAULT}'") from None
        if value < 0:
            raise argparse.ArgumentTypeError("a limit cannot be negative")
        return value

    return parse


# -- running ------------------------------------------------------------------------------


def _register_sharing(commands: "Subcommands") -> None:
    share = _command(
        commands,
        "share",
        "Decide who may use one model of a provider",
        _share,
        details="Overrides what the owner's agent config announces; takes effect on the "
        "gateway's next request, with no restart. --reset goes back to the agent's setting.",
        check=_share_target_given,
    )
    share.add_argument("provider", metavar="PROVIDER", help="the provider's name")
    share.add_argument("model", metavar="MODEL", help="the model id as the provider serves it")
    share.add_argument(
        "--with",
        dest="visibility",
        action="append",
        default=[],
        metavar="WHO",
        help="'private', 'network' or 'group:NAME'; repeat for several groups",
    )
    share.add_argument(
        "--reset", action="store_true", help="forget the override; the agent's config decides"
    )


def _share_target_given(args: argparse.Namespace) -> str | None:
    if bool(args.visibility) == bool(args.reset):
        return "give either --with WHO (one or more) or --reset"
    return None


async def _share(store: "Store", args: argparse.Namespace) -> None:
    visibility = [] if args.reset else args.visibility
    await store.set_model_share(args.provider, args.model, visibility)
    shown = ", ".join(sorted(set(visibility))) or "as the agent announces"
    print(f"{args.provider} {args.model}: {shown}")


def _register_usage(commands: "Subcommands") -> None:
    usage = _command(
        commands,
        "usage",
        "Show what each member consumed and what each provider served, by model",
        _usage,
        details="Providers are credited for what they serve; FOR_OTHERS counts requests of "
        "members other than the provider's owner.",
        check=_since_valid,
    )
    usage.add_argument(
        "user", metavar="USER", nargs="?", help="only this member (and their providers)"
    )
    usage.add_argument(
        "--since",
        default="7d",
        help="start: YYYY-MM-DD, an ISO time, or a span back from now like 24h or 30d (default 7d)",
    )


def _parse_since(text: str) -> datetime:
    now = datetime.now(UTC)
    units = {"h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _since_valid(args: argparse.Namespace) -> str | None:
    try:
        args.since = _parse_since(args.since)
    except ValueError:
        return f"--since {args.since!r}: give YYYY-MM-DD, an ISO time, or a span like 24h or 30d"
    return None


async def _usage(store: "Store", args: argparse.Namespace) -> None:
    consumed = await store.usage_by_user(since=args.since, user_name=args.user)
    served = await store.usage_by_provider(since=args.since, owner_name=args.user)
    print(f"Consumed since {args.since:%Y-%m-%d %H:%M} UTC")
    _print_table(
        ("USER", "MODEL", "REQUESTS", "ERRORS", "TOKENS", "AUDIO_S", "IMAGES"),
        [
            (
                t.who,
                t.model or "-",
                str(t.requests),
                str(t.errors),
                str(t.tokens),
                f"{t.audio_seconds:.1f}",
                str(t.images),
            )
            for t in consumed
        ],
    )
    print()
    print("Served by providers")
    _print_table(
        ("PROVIDER", "MODEL", "REQUESTS", "FOR_OTHERS", "TOKENS", "AUDIO_S", "IMAGES"),
        [
            (
                t.who,
                t.model,
                str(t.requests),
                str(t.for_others),
                str(t.tokens),
                f"{t.audio_seconds:.1f}",
                str(t.images),
            )
            for t in served
        ],
    )


def _handler(action: Action, check: Check | None) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        if check is not None and (problem := check(args)) is not None:
            return fail(problem, code=2)
        # Imported here so the agent, installed without the gateway extra, never needs them.
        try:
            from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

            from inference_club.store import StoreError  # noqa: PLC0415
        except ImportError as exc:
            return fail(
                f"this command needs the 'gateway' extra ({exc.name} is missing): "
                "pip install 'inference-club[gateway]'"
            )
        try:
            asyncio.run(_run(action, args))
        except StoreError as error:
            return fail(str(error))
        except (SQLAlchemyError, OSError) as error:
            cause = getattr(error, "orig", None) or error
            return fail(f"database error: {type(cause).__name__}: {_first_line(cause)}")
        return 0

    return handle


async def _run(action: Action, args: argparse.Namespace) -> None:
    from inference_club.store import Store, default_database_url  # noqa: PLC0415

    store = await Store.open(args.database_url or default_database_url(args.data))
    try:
        await action(store, args)
    finally:
        await store.close()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


# -- actions --------------------------------------------------------------------------------


async def _users_add(store: "Store", args: argparse.Namespace) -> None:
    user = await store.add_user(args.name, is_admin=args.admin)
    print(f"added user {user.name}" + (" (admin)" if user.is_admin else ""))


async def _users_list(store: "Store", _args: argparse.Namespace) -> None:
    _print_table(
        ("NAME", "ADMIN", "RPM", "DAILY_TOKENS", "DAILY_AUDIO_S", "DAILY_IMAGES", "CREATED"),
        [
            (
                user.name,
                "yes" if user.is_admin else "no",
                _limit_text(user.requests_per_minute),
                _limit_text(user.daily_tokens),
                _limit_text(user.daily_audio_seconds),
                _limit_text(user.daily_images),
                _time_text(user.created_at),
            )
            for user in await store.list_users()
        ],
    )


async def _users_set_limit(store: "Store", args: argparse.Namespace) -> None:
    given = {field: getattr(args, flag) for field, flag in _LIMIT_FIELDS if hasattr(args, flag)}
    user = await store.set_user_limits(args.name, **given)
    print(
        f"{user.name}: rpm={_limit_text(user.requests_per_minute)} "
        f"daily_tokens={_limit_text(user.daily_tokens)} "
        f"daily_audio_seconds={_limit_text(user.daily_audio_seconds)} "
        f"daily_images={_limit_text(user.daily_images)}"
    )


async def _keys_create(store: "Store", args: argparse.Namespace) -> None:
    key, secret = await store.create_api_key(args.user, args.name)
    print(secret)
    print(
        f"created API key {key.prefix}... ({key.name}) for {key.user_name}; "
        "it is shown only this once",
        file=sys.stderr,
    )


async def _keys_list(store: "Store", args: argparse.Namespace) -> None:
    _print_table(
        ("PREFIX", "NAME", "CREATED", "LAST_USED", "REVOKED"),
        [
            (
                key.prefix,
                key.name,
                _time_text(key.created_at),
                _time_text(key.last_used_at),
                _time_text(key.revoked_at),
            )
            for key in await store.list_api_keys(args.user)
        ],
    )


async def _keys_revoke(store: "Store", args: argparse.Namespace) -> None:
    key = await store.revoke_api_key(args.prefix)
    print(f"revoked API key {key.prefix}... ({key.name}) of {key.user_name}")


async def _providers_add(store: "Store", args: argparse.Namespace) -> None:
    provider, token = await store.add_provider(args.user, args.name)
    print(token)
    print(
        f"registered provider {provider.name} for {provider.owner_name}; its token "
        f"({provider.token_prefix}...) is shown only this once",
        file=sys.stderr,
    )


async def _providers_list(store: "Store", args: argparse.Namespace) -> None:
    _print_table(
        ("NAME", "OWNER", "TOKEN", "CREATED", "LAST_SEEN"),
        [
            (
                provider.name,
                provider.owner_name,
                provider.token_prefix,
                _time_text(provider.created_at),
                _time_text(provider.last_seen_at),
            )
            for provider in await store.list_providers(args.user)
        ],
    )


async def _groups_add(store: "Store", args: argparse.Namespace) -> None:
    group = await store.add_group(args.name)
    print(f"added group {group.name}")


async def _groups_add_member(store: "Store", args: argparse.Namespace) -> None:
    await store.add_group_member(args.group, args.user)
    print(f"added {args.user} to {args.group}")


async def _groups_remove_member(store: "Store", args: argparse.Namespace) -> None:
    await store.remove_group_member(args.group, args.user)
    print(f"removed {args.user} from {args.group}")


async def _groups_list(store: "Store", _args: argparse.Namespace) -> None:
    _print_table(
        ("GROUP", "MEMBERS"),
        [(group.name, ",".join(group.members) or "-") for group in await store.list_groups()],
    )


# -- output ---------------------------------------------------------------------------------


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(row[column]) for row in (headers, *rows)) for column in range(len(headers))]
    for row in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _limit_text(value: float | None) -> str:
    return DEFAULT if value is None else str(value)


def _time_text(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
