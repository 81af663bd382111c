"""Model names resolve as Flink resolves object names, through CREATE/DROP MODEL and USE."""

from __future__ import annotations

import pytest

from flink_ml_predict.registry import (
    ModelRegistry,
    ScriptModels,
    describe,
    qualify,
    shortest_name,
)

DC, DD = "default_catalog", "default_database"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("m1",), (DC, DD, "m1")),
        (("db", "m1"), (DC, "db", "m1")),
        (("c", "db", "m1"), ("c", "db", "m1")),
        ((DC, DD, "m1"), (DC, DD, "m1")),
    ],
)
def test_qualify(parts: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert qualify(parts, DC, DD) == expected
    assert ModelRegistry().qualify(parts) == expected


def test_shortest_name() -> None:
    assert shortest_name((DC, DD, "m1"), DC, DD) == "m1"
    assert shortest_name((DC, "db2", "m1"), DC, DD) == "db2.m1"
    assert shortest_name(("c2", DD, "m1"), DC, DD) == "c2.default_database.m1"


def test_describe_adds_the_resolved_name_only_to_qualified_names() -> None:
    assert describe(("m1",), (DC, DD, "m1")) == "'m1'"
    assert describe(("db", "m1"), (DC, "db", "m1")) == "'db.m1' (default_catalog.db.m1)"
    assert describe((DC, DD, "m1"), (DC, DD, "m1")) == "'default_catalog.default_database.m1'"


class TestScriptModels:
    def models(self) -> ScriptModels:
        models = ScriptModels(ModelRegistry())
        models.add(("m1",))
        return models

    @pytest.mark.parametrize("parts", [("m1",), (DD, "m1"), (DC, DD, "m1")])
    def test_every_form_of_a_created_name_is_known(self, parts: tuple[str, ...]) -> None:
        assert self.models().unknown(parts) is None

    def test_unknown_names_are_said_as_written_and_as_resolved(self) -> None:
        models = self.models()
        assert models.unknown(("other", "m1")) == (
            "ML_PREDICT: unknown model 'other.m1' (default_catalog.other.m1); models created "
            "before this statement: m1")
        assert models.unknown(("m2",)) == (
            "ML_PREDICT: unknown model 'm2'; models created before this statement: m1")

    def test_use_database_changes_what_short_names_mean(self) -> None:
        models = self.models()
        models.use(None, "db2")
        assert models.unknown(("m1",)) == (
            "ML_PREDICT: unknown model 'm1'; models created before this statement: "
            "default_database.m1")
        assert models.unknown((DD, "m1")) is None
        models.add(("m1",))
        assert models.unknown(("db2", "m1")) is None
        models.use(DC, DD)
        assert models.unknown(("m1",)) is None

    def test_after_use_catalog_names_that_need_its_default_database_are_not_judged(self) -> None:
        models = self.models()
        models.use("other_catalog", None)
        assert models.unknown(("m1",)) is None
        assert models.unknown(("db", "m1")) == (
            "ML_PREDICT: unknown model 'db.m1' (other_catalog.db.m1); models created before "
            "this statement: default_catalog.default_database.m1")
        assert models.unknown((DC, DD, "m1")) is None

    def test_drop_forgets_the_model(self) -> None:
        models = self.models()
        models.discard((DC, DD, "m1"))
        assert models.unknown(("m1",)) == (
            "ML_PREDICT: unknown model 'm1'; models created before this statement: none")
