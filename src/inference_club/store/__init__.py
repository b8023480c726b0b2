"""The gateway's database: users, API keys, providers, usage, sharing and assets."""

from inference_club.store.credentials import new_asset_id
from inference_club.store.engine import default_database_url
from inference_club.store.errors import (
    AlreadyExists,
    AmbiguousPrefix,
    InvalidName,
    InvalidValue,
    NotFound,
    StoreError,
    WouldWait,
)
from inference_club.store.records import (
    ApiKey,
    Asset,
    Group,
    KeyIdentity,
    Provider,
    UsageRecord,
    UsageTotal,
    User,
)
from inference_club.store.store import Store

__all__ = [
    "AlreadyExists",
    "AmbiguousPrefix",
    "ApiKey",
    "Asset",
    "Group",
    "InvalidName",
    "InvalidValue",
    "KeyIdentity",
    "NotFound",
    "Provider",
    "Store",
    "StoreError",
    "UsageRecord",
    "UsageTotal",
    "User",
    "WouldWait",
    "default_database_url",
    "new_asset_id",
]
