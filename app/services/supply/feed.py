"""The supplier feed's JSON, checked at the wall and turned into `domain.supply` records.

Each record is validated on its own: a bad one becomes an INVALID_RECORD `SyncIssue` naming the
record, the field and why, and the others go on. A document that is not the documented shape at
all (a page, a drop-folder file, a webhook body) raises `FeedShapeError`.

Strict on purpose: a count must be a JSON integer ("5" and true are refused), an amount a decimal
string (a JSON number may already have lost digits as a float), an instant must carry its zone.
Input values are never echoed into messages (they may be huge or hostile); ids are, once bounded.
Codes are the exception to strictness: StaySync's codes are case-insensitive and stored
upper-case (`app.services.catalog.code`), so the feed's are normalised the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from app.services.catalog import CODE, MAX_ROOM_TYPES, ROOM_TYPE_CODE
from app.services.inventory import MAX_AMOUNT, MAX_CONTRACT_NIGHTS
from domain.contracts import MAX_RELEASE_DAYS, MAX_ROOMS
from domain.money import Money, is_currency_code
from domain.nights import EARLIEST_NIGHT, LATEST_NIGHT
from domain.supply import (
    AllotmentUnit,
    Snapshot,
    SupplierContract,
    SupplierHotel,
    SupplierRoomType,
    SyncIssue,
    SyncIssueKind,
)

MAX_ID_LENGTH = 100  # contract.external_id is varchar(100)
MAX_NAME_LENGTH = 200  # hotel.name and room_type.name
MAX_STATUS_LENGTH = 64  # status_transform_config.external_status
MAX_TERMS_LENGTH = 20_000
MAX_PROBLEMS_LISTED = 5  # per record: enough to fix it, bounded for a record that is all wrong
WEBHOOK_TYPE = "contracts.updated"


class FeedShapeError(Exception):
    """A whole document is not the documented shape (not JSON, not an object, no `data` list...).

    Nothing in it can be trusted record by record: a fetch fails, a webhook answers 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- field validators: each raises one message in the feed's own terms ---------------------------


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("feed", message)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


def _code(pattern: re.Pattern[str], shortest: int) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("must be a string")
        text = value.strip().upper()
        if not pattern.match(text):
            raise _fail(f"must be {shortest} to 32 characters of A-Z, 0-9, '_' or '-'")
        return text

    return check


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("must be a string")
    text = value.strip()
    if not 1 <= len(text) <= MAX_NAME_LENGTH:
        raise _fail(f"must be 1 to {MAX_NAME_LENGTH} characters")
    return text


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _night(value: object) -> date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise _fail("must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail("must be a real calendar date YYYY-MM-DD") from None


_INSTANT_EXAMPLE = "such as 2027-01-01T10:00:00Z"


def _instant(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _fail(f"must be an ISO-8601 date and time with a zone, {_INSTANT_EXAMPLE}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"must be an ISO-8601 date and time with a zone, {_INSTANT_EXAMPLE}") from None
    if moment.utcoffset() is None:
        raise _fail(f"must carry a zone (Z or +HH:MM), {_INSTANT_EXAMPLE}: a time without one is ambiguous")
    return moment


_DECIMAL = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")
_AMOUNT_EXAMPLE = 'a decimal string such as "120.00"'


def _amount(value: object) -> Decimal:
    if _is_integer(value) or isinstance(value, float):
        raise _fail(f"must be {_AMOUNT_EXAMPLE}, not a JSON number (a number may already have lost digits as a float)")
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _fail(f"must be {_AMOUNT_EXAMPLE}")
    if value.startswith("-"):
        raise _fail("must not be negative")
    amount = Decimal(value)
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise _fail("must have at most 2 decimals")
    if amount >= MAX_AMOUNT:
        raise _fail(f"must be below {MAX_AMOUNT:,.0f}")
    return amount


def _currency(value: object) -> str:
    if not isinstance(value, str) or not is_currency_code(value):
        raise _fail("must be a 3-letter upper-case ISO 4217 code such as EUR")
    return value


@dataclass(frozen=True, slots=True)
class Allotment:
    value: int
    unit: AllotmentUnit


_UNITS = tuple(unit.value for unit in AllotmentUnit)


def _allotment(value: object) -> Allotment:
    if _is_integer(value):
        count, unit = value, AllotmentUnit.ROOMS
    elif isinstance(value, dict) and "value" in value and "unit" in value:
        count, unit = value["value"], value["unit"]
        if not _is_integer(count):
            raise _fail("value must be an integer")
        if not isinstance(unit, str) or unit not in _UNITS:
            raise _fail(f"unit must be {' or '.join(_UNITS)}")
        unit = AllotmentUnit(unit)
    else:
        raise _fail('must be an integer or {"value", "unit"}')
    if count < 0:  # type: ignore[operator]
        raise _fail("must not be negative")
    if unit is AllotmentUnit.ROOMS and count > MAX_ROOMS:  # type: ignore[operator]
        raise _fail(f"must be at most {MAX_ROOMS} rooms")
    return Allotment(count, unit)  # type: ignore[arg-type]


def _terms(value: object) -> str:
    if value is None:  # an optional field sent as null means the same as one left out
        return ""
    if not isinstance(value, str):
        raise _fail("must be a string")
    if len(value) > MAX_TERMS_LENGTH:
        raise _fail(f"must be at most {MAX_TERMS_LENGTH} characters")
    return value


def _none_as(empty: object) -> Callable[[object], object]:
    """An optional field sent as null means the same as one left out."""
    return lambda value: empty if value is None else value


Code = Annotated[str, PlainValidator(_code(CODE, 2))]
RoomTypeCode = Annotated[str, PlainValidator(_code(ROOM_TYPE_CODE, 1))]
Name = Annotated[str, PlainValidator(_name)]
Night = Annotated[date, PlainValidator(_night)]
Instant = Annotated[datetime, PlainValidator(_instant)]
Rooms = Annotated[int, Strict(), Field(ge=0, le=MAX_ROOMS)]
ExternalId = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


# --- the records ---------------------------------------------------------------------------------


class _Record(BaseModel):
    # Unknown fields are ignored: suppliers add fields, and none of ours changes meaning by them.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RoomTypeRecord(_Record):
    code: RoomTypeCode
    name: Name


class HotelRecord(_Record):
    code: Code
    name: Name
    room_types: Annotated[tuple[RoomTypeRecord, ...], Field(max_length=MAX_ROOM_TYPES)]

    @model_validator(mode="after")
    def _unique_room_types(self) -> HotelRecord:
        seen: set[str] = set()
        for index, room_type in enumerate(self.room_types):
            if room_type.code in seen:
                raise _fail(f"room_types[{index}].code: {room_type.code} appears twice in this hotel")
            seen.add(room_type.code)
        return self


class RateRecord(_Record):
    amount: Annotated[Decimal, PlainValidator(_amount)]
    currency: Annotated[str, PlainValidator(_currency)]


class NightRecord(_Record):
    night: Night = Field(alias="date")
    allotment: Rooms


class ContractRecord(_Record):
    id: ExternalId
    hotel_code: Code
    room_type_code: RoomTypeCode
    start_date: Night
    end_date: Night  # the supplier's LAST night, inclusive
    allotment: Annotated[Allotment, PlainValidator(_allotment)]
    rate: RateRecord
    release_days: Annotated[int, Strict(), Field(ge=0, le=MAX_RELEASE_DAYS)]
    status: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_STATUS_LENGTH)]
    terms: Annotated[str, PlainValidator(_terms)] = ""
    updated_at: Instant
    nights: Annotated[
        tuple[NightRecord, ...], BeforeValidator(_none_as(())), Field(max_length=MAX_CONTRACT_NIGHTS)
    ] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ContractRecord:
        first, last = self.start_date, self.end_date
        if last < first:
            raise _fail("end_date: must not be before start_date (end_date is the last night, inclusive)")
        if first < EARLIEST_NIGHT:
            raise _fail(f"start_date: must be on or after {EARLIEST_NIGHT.isoformat()}")
        if last >= LATEST_NIGHT:
            raise _fail(f"end_date: must be before {LATEST_NIGHT.isoformat()}")
        count = (last - first).days + 1
        if count > MAX_CONTRACT_NIGHTS:
            raise _fail(f"end_date: a contract may span at most {MAX_CONTRACT_NIGHTS} nights, this one spans {count}")
        if self.allotment.unit is AllotmentUnit.ROOM_NIGHTS and self.allotment.value > MAX_ROOMS * count:
            raise _fail(f"allotment: must be at most {MAX_ROOMS} rooms a night ({MAX_ROOMS * count} room-nights)")
        seen: set[date] = set()
        for index, override in enumerate(self.nights):
            if not first <= override.night <= last:
                raise _fail(f"nights[{index}].date: must be a night of the contract (start_date to end_date)")
            if override.night in seen:
                raise _fail(f"nights[{index}].date: {override.night.isoformat()} appears twice")
            seen.add(override.night)
        return self


def _hotel(record: HotelRecord) -> SupplierHotel:
    return SupplierHotel(
        code=record.code,
        name=record.name,
        room_types=tuple(SupplierRoomType(code=rt.code, name=rt.name) for rt in record.room_types),
    )


def _contract(record: ContractRecord) -> SupplierContract:
    return SupplierContract(
        external_id=record.id,
        hotel_code=record.hotel_code,
        room_type_code=record.room_type_code,
        start=record.start_date,
        end=record.end_date + timedelta(days=1),  # StaySync's ranges are half-open
        allotment=record.allotment.value,
        unit=record.allotment.unit,
        rate=Money(record.rate.amount, record.rate.currency),
        release_days=record.release_days,
        status=record.status,
        terms=record.terms,
        updated_at=record.updated_at,
        nights=tuple(sorted((night.night, night.allotment) for night in record.nights)),
    )


# --- the documents -------------------------------------------------------------------------------


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FeedPage(_Document):
    """One page of `GET /hotels` or `GET /contracts`; `data` holds raw records, checked later."""

    data: list[Any]
    next_page: Annotated[int, Strict(), Field(ge=1)] | None


class DropFile(_Document):
    hotels: list[Any] = []
    contracts: list[Any] = []

    @model_validator(mode="before")
    @classmethod
    def _says_something(cls, value: Any) -> Any:
        if isinstance(value, dict) and "hotels" not in value and "contracts" not in value:
            raise _fail('must have "hotels" or "contracts" (or both)')
        return value


class WebhookBody(_Document):
    type: Literal["contracts.updated"]
    data: list[Any]


def load_json(body: bytes | str, what: str) -> object:
    """`body` parsed as JSON (NaN and Infinity refused); `what` names it in the error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise FeedShapeError(f"{what}: not valid JSON ({error})") from None


DocumentT = TypeVar("DocumentT", bound=_Document)


def _document(model: type[DocumentT], document: object, what: str) -> DocumentT:
    if not isinstance(document, dict):
        raise FeedShapeError(f"{what}: must be a JSON object, not {_json_type(document)}")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise FeedShapeError(f"{what}: {_problems(error)}") from None


def parse_page(document: object, what: str = "page") -> FeedPage:
    """A feed page `{"data": [...], "next_page": N | null}`; raises FeedShapeError."""
    return _document(FeedPage, document, what)


def parse_drop_file(document: object, what: str = "file") -> Snapshot:
    """A drop-folder file `{"hotels": [...], "contracts": [...]}` as a snapshot."""
    file = _document(DropFile, document, what)
    return build_snapshot(file.hotels, file.contracts)


def parse_webhook(document: object, what: str = "webhook body") -> Snapshot:
    """A webhook body `{"type": "contracts.updated", "data": [...]}` as a snapshot (no hotels)."""
    body = _document(WebhookBody, document, what)
    return build_snapshot((), body.data)


# --- record by record ----------------------------------------------------------------------------


def build_snapshot(hotels: Sequence[object] = (), contracts: Sequence[object] = ()) -> Snapshot:
    """Raw hotel and contract records as a snapshot: those that pass, and an issue for each other.

    A key (hotel code, contract id) seen more than once: identical copies count once (an offset
    pager repeats a record when the list shifts under it); copies that differ are all rejected,
    since nothing says which one is current (feed order is not time order), and applying the
    wrong one could oversell. The contract stays as it was until a read agrees with itself.
    """
    kept_hotels, hotel_issues = _wall(hotels, HotelRecord, _hotel, _hotel_key, noun="hotel", plural="hotels")
    kept_contracts, contract_issues = _wall(
        contracts, ContractRecord, _contract, _contract_key, noun="contract", plural="contracts"
    )
    return Snapshot(hotels=kept_hotels, contracts=kept_contracts, issues=(*hotel_issues, *contract_issues))


def _hotel_key(raw: object) -> str | None:
    code = raw.get("code") if isinstance(raw, dict) else None
    if isinstance(code, str) and CODE.match(code.strip().upper()):
        return code.strip().upper()
    return None


def _contract_key(raw: object) -> str | None:
    external_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(external_id, str) and 1 <= len(external_id) <= MAX_ID_LENGTH:
        return external_id
    return None


RecordT = TypeVar("RecordT", bound=_Record)
ValueT = TypeVar("ValueT")


def _wall(
    raws: Sequence[object],
    model: type[RecordT],
    convert: Callable[[RecordT], ValueT],
    key_of: Callable[[object], str | None],
    *,
    noun: str,
    plural: str,
) -> tuple[tuple[ValueT, ...], list[SyncIssue]]:
    issues: list[SyncIssue] = []
    passed: dict[str, list[tuple[int, ValueT]]] = {}  # by key, in order of first appearance
    failed: set[str] = set()
    for index, raw in enumerate(raws):
        key = key_of(raw)
        label = f"{noun} {key}" if key else f"{plural}[{index}]"
        if not isinstance(raw, dict):
            issues.append(_invalid(key, f"{label}: must be an object, not {_json_type(raw)}"))
            continue
        try:
            record = model.model_validate(raw)
        except ValidationError as error:
            issues.append(_invalid(key, f"{label}: {_problems(error)}"))
            if key:
                failed.add(key)
            continue
        passed.setdefault(key, []).append((index, convert(record)))  # type: ignore[arg-type]  # a valid record has a key
    kept: list[ValueT] = []
    for key, copies in passed.items():
        first = copies[0][1]
        if key not in failed and all(value == first for _, value in copies):
            kept.append(first)
            continue
        where = ", ".join(f"{plural}[{index}]" for index, _ in copies)
        why = "another copy is invalid" if key in failed else "the copies differ"
        for index, _ in copies:
            issues.append(_invalid(key, f"{noun} {key}: {plural}[{index}] is rejected: this {noun} appears more than "
                                        f"once in the snapshot ({where}) and {why}, so none is taken"))
    return tuple(kept), issues


def _invalid(key: str | None, message: str) -> SyncIssue:
    return SyncIssue(external_id=key, kind=SyncIssueKind.INVALID_RECORD, message=message)


# --- messages ------------------------------------------------------------------------------------


def _problems(error: ValidationError) -> str:
    problems = [_describe(detail) for detail in error.errors(include_url=False, include_input=False)]
    text = "; ".join(problems[:MAX_PROBLEMS_LISTED])
    if len(problems) > MAX_PROBLEMS_LISTED:
        text += f"; and {len(problems) - MAX_PROBLEMS_LISTED} more"
    return text


def _describe(detail: ErrorDetails) -> str:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in detail["loc"]).lstrip(".")
    why = _why(detail)
    return f"{where}: {why}" if where else why


def _why(detail: ErrorDetails) -> str:
    context: dict[str, Any] = detail.get("ctx", {})
    match detail["type"]:
        case "missing":
            return "required"
        case "string_type":
            return "must be a string"
        case "int_type":
            return "must be an integer"
        case "list_type" | "tuple_type":
            return "must be a list"
        case "model_type" | "model_attributes_type" | "dict_type":
            return "must be an object"
        case "string_too_short":
            return "must not be empty"
        case "string_too_long":
            return f"must be at most {context['max_length']} characters"
        case "too_long":
            return f"must have at most {context['max_length']} items"
        case "greater_than_equal":
            return "must not be negative" if context["ge"] == 0 else f"must be at least {context['ge']}"
        case "less_than_equal":
            return f"must be at most {context['le']}"
        case "literal_error":
            return f"must be {context['expected']}"
    return detail["msg"]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
