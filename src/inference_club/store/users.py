"""Users: the club's members, with their rate limits and daily quotas."""

from types import EllipsisType

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import AnyRow, StoreBase, utcnow
from inference_club.store.credentials import check_name
from inference_club.store.errors import AlreadyExists, InvalidValue, NotFound
from inference_club.store.records import User
from inference_club.store.schema import users

_USER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.is_admin,
    users.c.requests_per_minute,
    users.c.daily_tokens,
    users.c.daily_audio_seconds,
    users.c.daily_images,
    users.c.created_at,
)


def user_from_row(row: AnyRow) -> User:
    """A :class:`User` from a row selected with the user columns."""
    return User(
        id=row.id,
        name=row.name,
        is_admin=bool(row.is_admin),
        requests_per_minute=row.requests_per_minute,
        daily_tokens=row.daily_tokens,
        daily_audio_seconds=row.daily_audio_seconds,
        daily_images=row.daily_images,
        created_at=row.created_at,
    )


class UsersMixin(StoreBase):
    """Adding, listing and limiting users."""

    async def add_user(self, name: str, *, is_admin: bool = False) -> User:
        """Create user ``name``; :class:`AlreadyExists` if the name is taken."""
        check_name(name, "user")
        try:
            async with self._write() as connection:
                row = (
                    await connection.execute(
                        insert(users)
                        .values(name=name, is_admin=is_admin, created_at=utcnow())
                        .returning(*_USER_COLUMNS)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"a user named {name!r} already exists") from None
        return user_from_row(row)

    async def get_user(self, name: str) -> User:
        """User ``name``, or :class:`NotFound`."""
        async with self._read_one() as connection:
            row = (
                await connection.execute(select(*_USER_COLUMNS).where(users.c.name == name))
            ).one_or_none()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        return user_from_row(row)

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        async with self._read_one() as connection:
            rows = await connection.execute(select(*_USER_COLUMNS).order_by(users.c.name))
            return [user_from_row(row) for row in rows]

    async def set_user_limits(
        self,
        name: str,
        *,
        requests_per_minute: int | EllipsisType | None = ...,
        daily_tokens: int | EllipsisType | None = ...,
        daily_audio_seconds: float | EllipsisType | None = ...,
        daily_images: int | EllipsisType | None = ...,
    ) -> User:
        """Change the limits given; ``None`` restores the gateway default, ``...`` keeps it."""
        changes: dict[str, int | float | None] = {}
        for column, value in (
            ("requests_per_minute", requests_per_minute),
            ("daily_tokens", daily_tokens),
            ("daily_audio_seconds", daily_audio_seconds),
            ("daily_images", daily_images),
        ):
            if value is ...:
                continue
            if value is not None and value < 0:
                raise InvalidValue(f"{column} must be zero or more, got {value}")
            changes[column] = value
        by_name = users.c.name == name
        async with self._write() as connection:
            if changes:
                statement = update(users).where(by_name).values(**changes)
                result = await connection.execute(statement.returning(*_USER_COLUMNS))
            else:
                result = await connection.execute(select(*_USER_COLUMNS).where(by_name))
            row = result.one_or_none()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        return user_from_row(row)
