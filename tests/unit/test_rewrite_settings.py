"""One statement, one operator configuration: what is said when ML_PREDICT calls disagree."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import PredictCallError
from flink_ml_predict.rewrite import Rewritten, format_duration
from flink_ml_predict.runtime.predictor import CallSettings


def test_calls_with_different_settings_are_listed_readably() -> None:
    rewritten = Rewritten("", settings=[CallSettings(max_concurrent=10, timeout=30.0),
                                        CallSettings(max_concurrent=4, timeout=180.0),
                                        CallSettings(max_concurrent=10, timeout=0.5)])
    with pytest.raises(PredictCallError) as caught:
        rewritten.statement_settings("statement 3 (line 9)")
    assert str(caught.value) == (
        "statement 3 (line 9): ML_PREDICT calls in one statement use different "
        "'max-concurrent-operations' or 'timeout', but PyFlink's async operator takes one value "
        "of each per job (call 1: max-concurrent-operations 10, timeout 30s; call 2: "
        "max-concurrent-operations 4, timeout 3min; call 3: max-concurrent-operations 10, "
        "timeout 500ms); give every call the same CONFIG values")


def test_calls_that_agree_give_their_settings() -> None:
    same = CallSettings(max_concurrent=3, timeout=60.0)
    assert Rewritten("", settings=[same, CallSettings(max_concurrent=3, timeout=60.0,
                                                      ordered=False)]
                     ).statement_settings("s") == same
    assert Rewritten("").statement_settings("s") is None


@pytest.mark.parametrize(("seconds", "text"), [(0.5, "500ms"), (1.25, "1250ms"), (30.0, "30s"),
                                                (90.0, "90s"), (180.0, "3min"), (0.0, "0s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
