"""The models created in one TableEnvironment, by fully qualified name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ModelDefinitionError
from .model import ModelSpec

_ATTRIBUTE = "_flink_ml_predict_models"


class ModelRegistry:
    """Model specs of one TableEnvironment; names resolve against its current catalog/database."""

    def __init__(self, t_env: Any = None) -> None:
        self._t_env = t_env
        self._models: dict[tuple[str, ...], ModelSpec] = {}

    @classmethod
    def of(cls, t_env: Any) -> ModelRegistry:
        """The registry attached to this TableEnvironment (created on first use)."""
        registry = getattr(t_env, _ATTRIBUTE, None)
        if registry is None:
            registry = cls(t_env)
            setattr(t_env, _ATTRIBUTE, registry)
        return registry

    def _qualify(self, parts: Sequence[str]) -> tuple[str, ...]:
        if self._t_env is None or len(parts) >= 3:
            return tuple(parts)
        catalog = self._t_env.get_current_catalog()
        database = self._t_env.get_current_database()
        return ((catalog, database) + tuple(parts))[-3:] if len(parts) == 1 else (catalog, *parts)

    def add(self, parts: Sequence[str], spec: ModelSpec, *, if_not_exists: bool = False,
            replace: bool = False, where: str = "") -> bool:
        """Adds a model; returns False when it existed and IF NOT EXISTS kept the old one."""
        key = self._qualify(parts)
        if key in self._models and not replace:
            if if_not_exists:
                return False
            raise ModelDefinitionError(f"{where + ': ' if where else ''}model {'.'.join(key)} "
                                       "already exists (use IF NOT EXISTS, or DROP MODEL first)")
        self._models[key] = spec
        return True

    def get(self, parts: Sequence[str]) -> ModelSpec | None:
        """The model of that name, or None."""
        return self._models.get(self._qualify(parts))

    def remove(self, parts: Sequence[str]) -> bool:
        """Removes a model; returns whether it existed."""
        return self._models.pop(self._qualify(parts), None) is not None

    def names(self) -> list[str]:
        """Names of the models, as short as the current catalog/database allows."""
        return sorted(key[-1] if self._qualify(key[-1:]) == key else ".".join(key)
                      for key in self._models)
