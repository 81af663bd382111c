"""Our parsed Flink types and PyFlink's DataType, both ways (imports PyFlink; types.py does not)."""

from __future__ import annotations

from typing import Any

from pyflink.table import DataTypes
from pyflink.table import types as pt
from pyflink.table.types import DataType

from .types import FlinkType, RowField

_SIMPLE = {pt.BooleanType: "BOOLEAN", pt.TinyIntType: "TINYINT", pt.SmallIntType: "SMALLINT",
           pt.IntType: "INT", pt.BigIntType: "BIGINT", pt.FloatType: "FLOAT",
           pt.DoubleType: "DOUBLE", pt.DateType: "DATE"}
MAX_LENGTH = 2147483647


def to_data_type(t: FlinkType) -> DataType:
    """The PyFlink DataType of a parsed Flink type."""
    nullable = t.nullable
    if t.kind == "STRING":
        return DataTypes.STRING(nullable)
    if t.kind in ("VARCHAR", "CHAR"):
        return getattr(DataTypes, t.kind)(t.params[0], nullable)  # type: ignore[no-any-return, unused-ignore]
    if t.kind == "DECIMAL":
        return DataTypes.DECIMAL(t.params[0], t.params[1], nullable)
    if t.kind == "TIMESTAMP":
        return DataTypes.TIMESTAMP(t.params[0], nullable)
    if t.kind == "ARRAY":
        assert t.element is not None
        return DataTypes.ARRAY(to_data_type(t.element), nullable)
    if t.kind == "MAP":
        assert t.key is not None and t.element is not None
        return DataTypes.MAP(to_data_type(t.key), to_data_type(t.element), nullable)
    if t.kind == "ROW":
        return DataTypes.ROW([DataTypes.FIELD(f.name, to_data_type(f.type), f.description)
                              for f in t.fields], nullable)
    return getattr(DataTypes, t.kind)(nullable)  # type: ignore[no-any-return, unused-ignore]


def from_data_type(data_type: Any) -> FlinkType | None:
    """Our FlinkType of a PyFlink DataType (a table column's); None for types models cannot take."""
    nullable = bool(getattr(data_type, "_nullable", True))
    for cls, kind in _SIMPLE.items():
        if type(data_type) is cls:
            return FlinkType(kind, nullable)
    if isinstance(data_type, pt.VarCharType):
        if data_type.length == MAX_LENGTH:
            return FlinkType("STRING", nullable)
        return FlinkType("VARCHAR", nullable, (data_type.length,))
    if isinstance(data_type, pt.CharType):
        return FlinkType("CHAR", nullable, (data_type.length,))
    if isinstance(data_type, pt.DecimalType):
        return FlinkType("DECIMAL", nullable, (data_type.precision, data_type.scale))
    if isinstance(data_type, pt.TimestampType):
        return FlinkType("TIMESTAMP", nullable, (data_type.precision,))
    if isinstance(data_type, pt.ArrayType):
        element = from_data_type(data_type.element_type)
        return None if element is None else FlinkType("ARRAY", nullable, element=element)
    if isinstance(data_type, pt.MapType):
        key, value = from_data_type(data_type.key_type), from_data_type(data_type.value_type)
        if key is None or value is None:
            return None
        return FlinkType("MAP", nullable, key=key, element=value)
    if isinstance(data_type, pt.RowType):
        fields = [(f.name, from_data_type(f.data_type)) for f in data_type.fields]
        if any(t is None for _, t in fields):
            return None
        return FlinkType("ROW", nullable, fields=tuple(RowField(n, t) for n, t in fields
                                                       if t is not None))
    return None
