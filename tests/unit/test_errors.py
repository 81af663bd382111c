"""The error tree documented in flink_ml_predict.errors is the one the package raises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import flink_ml_predict
from flink_ml_predict import errors


def documented_tree() -> dict[str, str | None]:
    """Class name -> parent name, read from the 'Tree::' block of the errors module docstring."""
    block = errors.__doc__.split("Tree::", 1)[1].split("\n\n")[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^(\s*(?:\|\s*)*)(?:\+-- )?([A-Z]\w+Error)\s", line + " ")
        if not match:
            continue
        depth = match.start(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(2)))
    return parents


def package_errors() -> dict[str, type]:
    """Every subclass of FlinkMlPredictError defined anywhere in the package."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(flink_ml_predict.__path__, "flink_ml_predict."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, errors.FlinkMlPredictError):
                found[value.__name__] = value
    return found


def test_the_documented_tree_is_read() -> None:
    tree = documented_tree()
    assert tree["FlinkMlPredictError"] is None
    assert tree["SqlSyntaxError"] == "ConfigurationError"
    assert tree["PermanentModelCallError"] == "ModelCallError"


def test_every_error_class_is_in_the_tree_with_its_parent() -> None:
    tree = documented_tree()
    classes = package_errors()
    assert set(classes) == set(tree)
    for name, cls in classes.items():
        assert cls.__module__ == "flink_ml_predict.errors", name
        parent = tree[name]
        bases = [b.__name__ for b in cls.__bases__ if issubclass(b, errors.FlinkMlPredictError)]
        assert bases == ([parent] if parent else []), name


def test_every_error_class_is_public() -> None:
    assert set(documented_tree()) <= set(flink_ml_predict.__all__)


def test_statement_error_is_still_importable_from_the_runner() -> None:
    from flink_ml_predict.runner import StatementError

    assert StatementError is errors.StatementError is flink_ml_predict.StatementError
    assert issubclass(StatementError, errors.FlinkMlPredictError)
    assert not issubclass(StatementError, errors.ConfigurationError)
