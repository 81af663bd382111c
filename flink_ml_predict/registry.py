"""The models created in one TableEnvironment, by fully qualified name.

A model name resolves like every Flink object name: ``m`` against the current catalog and
database, ``db.m`` against the current catalog, ``catalog.db.m`` as written. Messages name a
model as it was written, followed by what it resolved to when the written name was qualified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._planner_threads import seed_planner_threads
from .environment import silence_environment_logging
from .errors import ModelDefinitionError
from .model import ModelSpec

_ATTRIBUTE = "_flink_ml_predict_models"
DEFAULT_CATALOG = "default_catalog"
DEFAULT_DATABASE = "default_database"

# A fully qualified name; the database is None after USE CATALOG until the catalog has said which
# database is its default (only a running catalog knows).
Key = tuple[str | None, ...]


def qualify(parts: Sequence[str], catalog: str, database: str | None) -> Key:
    """``(catalog, database, name)`` of a 1 to 3 part name, resolved as Flink resolves it."""
    if len(parts) >= 3:
        return tuple(parts)
    if len(parts) == 2:
        return (catalog, *parts)
    return (catalog, database, *parts)


def shortest_name(key: Key, catalog: str, database: str | None) -> str:
    """The shortest name that resolves to ``key`` from the current catalog and database."""
    if key[0] != catalog:
        return ".".join(str(p) for p in key)
    if key[1] != database:
        return ".".join(str(p) for p in key[1:])
    return str(key[2])


def describe(parts: Sequence[str], key: Key) -> str:
    """A model as written, with what it resolved to when it was written qualified (``db.m``)."""
    written = ".".join(parts)
    resolved = ".".join("?" if p is None else p for p in key)
    return f"'{written}'" if len(parts) == 1 or written == resolved else \
        f"'{written}' ({resolved})"


def unknown_model(parts: Sequence[str], key: Key, known: Iterable[str], context: str) -> str:
    """The message for an ML_PREDICT call of a model that does not exist."""
    return (f"ML_PREDICT: unknown model {describe(parts, key)}; models {context}: "
            f"{', '.join(sorted(known)) or 'none'}")


class ModelRegistry:
    """Model specs of one TableEnvironment; names resolve against its current catalog/database."""

    def __init__(self, t_env: Any = None) -> None:
        self._t_env = t_env
        self._models: dict[Key, ModelSpec] = {}

    @classmethod
    def of(cls, t_env: Any) -> ModelRegistry:
        """The registry attached to this TableEnvironment (created on first use).

        First use also raises the levels of Flink's loggers that write a process's environment
        (:func:`~.environment.silence_environment_logging`): a TableEnvironment the user created
        runs in a JVM that may hold an API key in its environment. It also makes every gateway
        thread able to plan queries (:func:`~._planner_threads.seed_planner_threads`)."""
        registry = getattr(t_env, _ATTRIBUTE, None)
        if registry is None:
            silence_environment_logging()
            seed_planner_threads(t_env)
            registry = cls(t_env)
            setattr(t_env, _ATTRIBUTE, registry)
        return registry

    def current(self) -> tuple[str, str]:
        """The current catalog and database of the TableEnvironment (Flink's defaults without)."""
        if self._t_env is None:
            return DEFAULT_CATALOG, DEFAULT_DATABASE
        return self._t_env.get_current_catalog(), self._t_env.get_current_database()

    def qualify(self, parts: Sequence[str]) -> Key:
        """The fully qualified key of a model name, resolved against the current database."""
        return qualify(parts, *self.current())

    def add(self, parts: Sequence[str], spec: ModelSpec, *, if_not_exists: bool = False,
            replace: bool = False, where: str = "") -> bool:
        """Adds a model; returns False when it existed and IF NOT EXISTS kept the old one."""
        key = self.qualify(parts)
        if key in self._models and not replace:
            if if_not_exists:
                return False
            raise ModelDefinitionError(f"{where + ': ' if where else ''}model "
                                       f"{describe(parts, key)} already exists (use IF NOT "
                                       "EXISTS, or DROP MODEL first)")
        self._models[key] = spec
        return True

    def get(self, parts: Sequence[str]) -> ModelSpec | None:
        """The model of that name, or None."""
        return self._models.get(self.qualify(parts))

    def remove(self, parts: Sequence[str]) -> bool:
        """Removes a model; returns whether it existed."""
        return self._models.pop(self.qualify(parts), None) is not None

    def keys(self) -> list[Key]:
        """The fully qualified names of the models."""
        return list(self._models)

    def names(self) -> list[str]:
        """Names of the models, as short as the current catalog/database allows."""
        current = self.current()
        return sorted(shortest_name(key, *current) for key in self._models)


class ScriptModels:
    """The models a script will have created by each statement, before any statement runs.

    Follows CREATE MODEL, DROP MODEL and USE through the script, starting from the registry's
    models and current catalog/database, so that ML_PREDICT calls are checked before the first
    job starts.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self._catalog, database = registry.current()
        self._database: str | None = database
        self._keys: set[Key] = set(registry.keys())

    def use(self, catalog: str | None, database: str | None) -> None:
        """Follows ``USE CATALOG c`` (``(c, None)``), ``USE db`` and ``USE c.db``."""
        if catalog is not None:
            self._catalog = catalog
        self._database = database

    def key(self, parts: Sequence[str]) -> Key:
        """The fully qualified key of a name at this point of the script."""
        return qualify(parts, self._catalog, self._database)

    def add(self, parts: Sequence[str]) -> None:
        """A CREATE MODEL of this name."""
        self._keys.add(self.key(parts))

    def discard(self, parts: Sequence[str]) -> None:
        """A DROP MODEL of this name."""
        self._keys.discard(self.key(parts))

    def unknown(self, parts: Sequence[str]) -> str | None:
        """The message for a name that certainly names no model here, else None.

        After ``USE CATALOG`` the current database is the catalog's default, which only the
        running catalog knows; names that depend on it are left to the check when the statement
        runs.
        """
        key = self.key(parts)
        if key in self._keys or None in key:
            return None
        known = (shortest_name(k, self._catalog, self._database) for k in self._keys)
        return unknown_model(parts, key, known, "created before this statement")
