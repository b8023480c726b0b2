"""Groups of users and who may see each provider's models."""

from collections.abc import Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import (
    StoreBase,
    bump_sharing_revision,
    group_id_by_name,
    provider_id_by_name,
    user_id_by_name,
    utcnow,
)
from inference_club.store.credentials import check_name
from inference_club.store.errors import AlreadyExists, InvalidValue, NotFound
from inference_club.store.records import Group
from inference_club.store.schema import (
    MODEL_LENGTH,
    group_members,
    groups,
    model_shares,
    users,
)

PRIVATE = "private"
NETWORK = "network"
GROUP_PREFIX = "group:"


class SharingMixin(StoreBase):
    """Groups, their members, and model visibility."""

    async def add_group(self, name: str) -> Group:
        """Create group ``name``, empty; :class:`AlreadyExists` if the name is taken."""
        check_name(name, "group")
        try:
            async with self._write() as connection:
                row = (
                    await connection.execute(
                        insert(groups)
                        .values(name=name, created_at=utcnow())
                        .returning(groups.c.id, groups.c.created_at)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"a group named {name!r} already exists") from None
        return Group(id=row.id, name=name, members=(), created_at=row.created_at)

    async def add_group_member(self, group_name: str, user_name: str) -> None:
        """Put ``user_name`` in ``group_name``; :class:`AlreadyExists` if already there."""
        try:
            async with self._write() as connection:
                await connection.execute(
                    insert(group_members).values(
                        group_id=await group_id_by_name(connection, group_name),
                        user_id=await user_id_by_name(connection, user_name),
                    )
                )
                await bump_sharing_revision(connection)
        except IntegrityError:
            raise AlreadyExists(f"{user_name!r} is already in group {group_name!r}") from None

    async def remove_group_member(self, group_name: str, user_name: str) -> None:
        """Take ``user_name`` out of ``group_name``; :class:`NotFound` if not a member."""
        async with self._write() as connection:
            result = await connection.execute(
                delete(group_members).where(
                    group_members.c.group_id == await group_id_by_name(connection, group_name),
                    group_members.c.user_id == await user_id_by_name(connection, user_name),
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"{user_name!r} is not in group {group_name!r}")
            await bump_sharing_revision(connection)

    async def list_groups(self) -> list[Group]:
        """Every group with its members' names, by name."""
        async with self._read() as connection:
            group_rows = (await connection.execute(select(groups).order_by(groups.c.name))).all()
            member_rows = await connection.execute(
                select(group_members.c.group_id, users.c.name)
                .join_from(group_members, users, group_members.c.user_id == users.c.id)
                .order_by(users.c.name)
            )
            members: dict[int, list[str]] = {}
            for member in member_rows:
                members.setdefault(member.group_id, []).append(member.name)
        return [
            Group(
                id=row.id,
                name=row.name,
                members=tuple(members.get(row.id, ())),
                created_at=row.created_at,
            )
            for row in group_rows
        ]

    async def group_memberships(self) -> dict[int, frozenset[str]]:
        """Every user id that is in a group, to the names of its groups."""
        async with self._read_one() as connection:
            rows = await connection.execute(
                select(group_members.c.user_id, groups.c.name).join_from(
                    group_members, groups, group_members.c.group_id == groups.c.id
                )
            )
            memberships: dict[int, set[str]] = {}
            for row in rows:
                memberships.setdefault(row.user_id, set()).add(row.name)
        return {user_id: frozenset(names) for user_id, names in memberships.items()}

    async def user_groups(self, user_id: int) -> frozenset[str]:
        """The names of the groups user ``user_id`` belongs to."""
        async with self._read_one() as connection:
            names = await connection.scalars(
                select(groups.c.name)
                .join_from(group_members, groups, group_members.c.group_id == groups.c.id)
                .where(group_members.c.user_id == user_id)
            )
            return frozenset(names)

    async def set_model_share(
        self, provider_name: str, model: str, visibility: Sequence[str]
    ) -> None:
        """Replace who may see ``model`` of ``provider_name``.

        ``visibility`` holds "private", or "network", or any number of "group:NAME";
        an empty sequence goes back to what the agent announces.
        """
        wanted = sorted(set(visibility))
        _check_visibility(model, wanted)
        async with self._write() as connection:
            provider = await provider_id_by_name(connection, provider_name)
            for value in wanted:
                if value.startswith(GROUP_PREFIX):
                    await group_id_by_name(connection, value.removeprefix(GROUP_PREFIX))
            await connection.execute(
                delete(model_shares).where(
                    model_shares.c.provider_id == provider, model_shares.c.model == model
                )
            )
            if wanted:
                await connection.execute(
                    insert(model_shares),
                    [{"provider_id": provider, "model": model, "visibility": v} for v in wanted],
                )
            await bump_sharing_revision(connection)

    async def model_shares(self) -> dict[tuple[int, str], tuple[str, ...]]:
        """Every explicit share: ``(provider id, model)`` to its sorted visibilities."""
        async with self._read_one() as connection:
            rows = await connection.execute(
                select(model_shares).order_by(
                    model_shares.c.provider_id, model_shares.c.model, model_shares.c.visibility
                )
            )
            shares: dict[tuple[int, str], list[str]] = {}
            for row in rows:
                shares.setdefault((row.provider_id, row.model), []).append(row.visibility)
        return {key: tuple(values) for key, values in shares.items()}


def _check_visibility(model: str, visibility: Sequence[str]) -> None:
    if not model or len(model) > MODEL_LENGTH:
        raise InvalidValue(f"a model id must be 1-{MODEL_LENGTH} characters")
    for value in visibility:
        if value.startswith(GROUP_PREFIX):
            check_name(value.removeprefix(GROUP_PREFIX), "group")
        elif value not in (PRIVATE, NETWORK):
            raise InvalidValue(
                f"visibility must be 'private', 'network' or 'group:NAME', not {value[:80]!r}"
            )
    if len(visibility) > 1 and (PRIVATE in visibility or NETWORK in visibility):
        raise InvalidValue("'private' and 'network' cannot be combined with other visibilities")
