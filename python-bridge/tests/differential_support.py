"""Support of ``test_differential.py``: operations, strategies, the two runs.

The differential test runs one generated sequence of user operations twice
on fresh tables: once with the reference receivers connected to
``post_save`` in process (``accounts.in_process.run_receivers``: the
receivers ``settings.ACCOUNTS_RECEIVERS`` names, the profile receiver and
optionally DRF's token receiver, in one ``atomic()`` per save as the worker
applies a message), the bridge suspended, and once through the bridge in
``sync`` mode and the real ``signal-worker`` started with the same
``--receivers``, the in-process receivers disconnected. Each run returns, per top-level operation, an *outcome* and a
snapshot of the tables; the test compares them.

Outcomes are compared in the bridge's vocabulary: an exception of the
in-process receiver is mapped to the ``WorkerError`` code (and field) the
bridge must raise for the same operation (:func:`expected_error`). Where the
two cannot behave the same (an error inside ``atomic()``), the in-process
run asserts what Django really did and then states the documented bridge
behaviour (:func:`InProcessRun._block`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import re
import string

from hypothesis import strategies as st

MAX_STEPS = 8  # saves and deletes per example, block contents included
TOKEN_KEY = re.compile(r"[0-9a-f]{40}")


class _Absent:
    """``_profile_data`` not set on the instance at all (``getattr`` default ``{}``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


class Rollback(Exception):
    """Raised at the end of a generated ``atomic()`` block that must roll back."""


# ---------------------------------------------------------------------------
# Operations (generated) and steps (usernames resolved)


@dataclasses.dataclass(frozen=True)
class Create:
    data: object  # ABSENT, a dict, or a non-dict value
    how: str = "save"  # "save" | "raw" (save_base(raw=True))


@dataclasses.dataclass(frozen=True)
class Update:
    target: int  # index into the users created so far (modulo)
    data: object
    how: str = "save"  # "save" | "raw" | "update_fields"


@dataclasses.dataclass(frozen=True)
class DeleteProfile:
    target: int


@dataclasses.dataclass(frozen=True)
class Block:
    ops: tuple  # Create / Update only
    rollback: bool


@dataclasses.dataclass(frozen=True)
class Step:
    kind: str  # "create" | "update" | "delete_profile" | "block"
    username: str | None = None
    data: object = ABSENT
    how: str = "save"
    ops: tuple = ()
    rollback: bool = False

    def __repr__(self) -> str:
        if self.kind == "block":
            end = "rollback" if self.rollback else "commit"
            return f"atomic[{', '.join(map(repr, self.ops))}; {end}]"
        if self.kind == "delete_profile":
            return f"delete_profile({self.username})"
        how = "" if self.how == "save" else f", {self.how}"
        return f"{self.kind}({self.username}, {self.data!r}{how})"


def plan(ops) -> list[Step]:
    """Resolve usernames (``u0``, ``u1``, ... in creation order) and targets.

    Targets index the usernames created *so far in the sequence*, whether or
    not the user exists at run time (a rolled-back create leaves a name
    whose user is missing: the operation then does nothing on both sides).
    Stops after ``MAX_STEPS`` saves/deletes.
    """
    names: list[str] = []
    steps: list[Step] = []
    budget = MAX_STEPS

    def one(op) -> Step | None:
        if isinstance(op, Create):
            name = f"u{len(names)}"
            names.append(name)
            return Step("create", name, op.data, op.how)
        if not names:
            return None
        name = names[op.target % len(names)]
        if isinstance(op, Update):
            return Step("update", name, op.data, op.how)
        return Step("delete_profile", name)

    for op in ops:
        if budget <= 0:
            break
        if isinstance(op, Block):
            subs = []
            for sub in op.ops[:budget]:
                step = one(sub)
                if step is not None:
                    subs.append(step)
            if subs:
                budget -= len(subs)
                steps.append(Step("block", ops=tuple(subs), rollback=op.rollback))
            continue
        step = one(op)
        if step is not None:
            budget -= 1
            steps.append(step)
    return steps


# ---------------------------------------------------------------------------
# Strategies

_ARABIC_INDIC = str.maketrans(string.digits, "٠١٢٣٤٥٦٧٨٩")
_FULLWIDTH = str.maketrans(string.digits, "０１２３４５６７８９")


def _date_forms(d: datetime.date) -> list[str]:
    """Valid spellings of ``d`` (PROTOCOL.md, "Dates")."""
    iso_year, week, weekday = d.isocalendar()
    forms = [
        d.isoformat(),
        f"{d.year:04d}{d.month:02d}{d.day:02d}",
        f"{iso_year:04d}-W{week:02d}-{weekday}",
        f"{iso_year:04d}W{week:02d}{weekday}",
        d.isoformat() + "\n",
        d.isoformat().translate(_ARABIC_INDIC),
        f"{d.year:04d}-{d.month}-{d.day}".translate(_FULLWIDTH),
        f"{d.year:04d}{d.month:02d}{d.day:02d}ab",
    ]
    if d.year >= 1000:
        forms.append(f"{d.year}-{d.month}-{d.day}")  # 2020-1-2
    if weekday == 1:
        forms += [f"{iso_year:04d}-W{week:02d}", f"{iso_year:04d}W{week:02d}"]
    return forms


_BAD_DATES = [
    "2021-02-29", "2020-02-30", "2020-13-01", "2020-00-10", "0000-01-01", "2020-1-32",
    "2021-W53", "2020-W54", "2020-W01-8", "2020-W00",
    "02/01/1990", "2020-01-02T10:00:00", " 2020-01-02", "2020-01-02 ", "2020-01-02\n\n",
    "", "not a date", "999-1-2", "2020-01", "2020/01/02", "20200132", "𝟐𝟎𝟐𝟎-01-02",
]

def weighted(*branches):
    """``one_of`` with integer weights: ``weighted((3, a), (1, b))`` draws ``a`` 3 times as often.

    Each copy is a distinct ``map`` (``one_of`` drops repeated strategy objects).
    """
    return st.one_of(*[strategy.map(_same) for weight, strategy in branches for _ in range(weight)])


def _same(value):
    return value


dates = st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31))
valid_date_strings = dates.flatmap(lambda d: st.sampled_from(_date_forms(d)))
birthdates = weighted(
    (4, valid_date_strings),
    (2, st.sampled_from(_BAD_DATES)),
    (1, st.text(max_size=12)),
    (1, dates),  # a date object: the bridge sends it as YYYY-MM-DD
    (2, st.none()),
    (1, st.integers(-5, 20260101)),  # not a string: TypeError in process, bad_request
)
profile_types = weighted(
    (4, st.sampled_from(["personal", "business"])),
    (2, st.sampled_from(["staff", "", "P" * 20, "P" * 21, "é" * 20, "😀" * 20, "😀" * 21, "a\x00b", "Ünïcødé"])),
    (2, st.text(max_size=24)),
    (1, st.none()),
)
sexes = weighted(
    (4, st.sampled_from(["M", "F"])),
    (2, st.sampled_from(["X", "", "MF", "é", "😀", "\x00", "👩‍🚀"])),
    (2, st.text(max_size=3)),
    (2, st.none()),
)
profile_dicts = st.fixed_dictionaries(
    {},
    optional={
        "profile_type": profile_types,
        "sex": sexes,
        "birthdate": birthdates,
        "nickname": st.text(max_size=3),  # unknown keys are ignored
    },
)
good_profile_dicts = st.fixed_dictionaries(  # valid everywhere: updates then find a profile
    {},
    optional={
        "profile_type": st.sampled_from(["personal", "business", "other", "😀"]),
        "sex": st.sampled_from(["M", "F", "é", None]),
        "birthdate": st.one_of(valid_date_strings, dates, st.none()),
    },
)
profile_data = weighted(
    (4, good_profile_dicts),
    (6, profile_dicts),
    (1, st.just(ABSENT)),
    (1, st.sampled_from([None, [], ["sex", "F"], "F", 5])),  # not a dict: AttributeError in process, bad_request
)
targets = st.integers(0, 7)
creates = st.builds(Create, profile_data, st.sampled_from(["save", "save", "save", "raw"]))
updates = st.builds(Update, targets, profile_data, st.sampled_from(["save", "save", "raw", "update_fields"]))
blocks = st.builds(
    Block,
    st.lists(weighted((2, updates), (1, creates)), min_size=1, max_size=3).map(tuple),
    st.sampled_from([False, False, True]),  # roll back one block in three
)
operations = st.builds(  # a create first, so that later operations have a user to target
    lambda first, rest: [first, *rest],
    creates,
    st.lists(weighted((5, updates), (2, creates), (2, blocks), (1, st.builds(DeleteProfile, targets))), max_size=6),
)


# ---------------------------------------------------------------------------
# Outcomes


@dataclasses.dataclass(frozen=True)
class Ok:
    pass


@dataclasses.dataclass(frozen=True)
class Missing:
    """The target user does not exist: nothing was saved."""


@dataclasses.dataclass(frozen=True)
class RolledBack:
    pass


@dataclasses.dataclass(frozen=True)
class Error:
    """A final error in the bridge's terms.

    Expected errors carry the set of acceptable ``fields`` (one, except for a
    PostgreSQL ``DataError``, which does not name the column); actual errors
    carry the one field the worker named. ``receiver``: the receiver that
    raised in process, or the one the worker's reply names
    (``error.receiver``); compared when the worker names one.
    """

    code: str
    fields: frozenset
    user: str | None
    detail: str = dataclasses.field(default="", compare=False)
    receiver: str | None = dataclasses.field(default=None, compare=False)

    def matches(self, actual: "Error") -> bool:
        return (
            isinstance(actual, Error)
            and self.code == actual.code
            and self.user == actual.user
            and actual.fields <= self.fields
            and len(actual.fields) == 1
            and (actual.receiver is None or actual.receiver == self.receiver)
        )


@dataclasses.dataclass(frozen=True)
class BlockError:
    """An ``atomic()`` block whose messages failed after commit (bridge).

    ``first``: the error raised from the block's exit; ``left``: outbox rows
    the failing callback left behind (later messages of the block, not sent
    by their callbacks); ``later``: final errors the relay then got for
    those rows, in order.
    """

    first: Error
    left: int
    later: tuple

    def matches(self, actual) -> bool:
        return (
            isinstance(actual, BlockError)
            and self.first.matches(actual.first)
            and self.left == actual.left
            and len(self.later) == len(actual.later)
            and all(e.matches(a) for e, a in zip(self.later, actual.later))
        )


def outcome_matches(expected, actual) -> bool:
    if isinstance(expected, (Error, BlockError)):
        return expected.matches(actual)
    return expected == actual


_TOO_LONG = {"profile_type": 20, "sex": 1}


def expected_error(exc: BaseException, data, user: str, vendor: str) -> Error:
    """The bridge's error for an exception of the in-process receiver.

    The mapping (also in the module docstring of ``test_differential.py``):

    ==========================================================  =================================
    in process (raised from ``save()``)                          bridge (``WorkerError``)
    ==========================================================  =================================
    ``ValidationError`` (``DateField.to_python``: bad format,    ``invalid_value``, ``birthdate``
    nonexistent date)
    ``IntegrityError`` NOT NULL on ``profile_type``              ``invalid_value``, ``profile_type``
    ``IntegrityError`` unique ``user_id`` / foreign key          ``conflict``, ``instance.pk``
    ``DataError`` (PostgreSQL: over ``varchar(n)``, NUL)          ``invalid_value``, the offending
                                                                 text field
    ``TypeError`` (``birthdate`` not a string or date)           ``bad_request``, ``birthdate``
    ``AttributeError`` (``_profile_data`` not a dict)            ``bad_request``,
                                                                 ``attrs._profile_data``
    ==========================================================  =================================

    Anything else is unmapped: the test fails and shows the exception. The
    receiver that raised is the token receiver when the error names its
    table (``authtoken_token``), else the profile receiver (which runs first).
    """
    from django.core.exceptions import ValidationError
    from django.db import DataError, IntegrityError

    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ValidationError):
        assert exc.code in ("invalid", "invalid_date"), detail
        return Error("invalid_value", frozenset({"birthdate"}), user, detail, "profile")
    if isinstance(exc, IntegrityError):
        text = str(exc)
        if "profile_type" in text and ("NOT NULL" in text or "not-null" in text):
            return Error("invalid_value", frozenset({"profile_type"}), user, detail, "profile")
        if "UNIQUE" in text or "duplicate key" in text or "FOREIGN KEY" in text or "foreign key" in text:
            receiver = "drf-token" if "authtoken_token" in text else "profile"
            return Error("conflict", frozenset({"instance.pk"}), user, detail, receiver)
    if isinstance(exc, DataError) and vendor == "postgresql":
        offending = frozenset(
            key
            for key, limit in _TOO_LONG.items()
            if isinstance(data, dict)
            and isinstance(data.get(key), str)
            and (len(data[key]) > limit or "\x00" in data[key])
        )
        assert offending, f"DataError without an over-long or NUL text value in {data!r}: {detail}"
        return Error("invalid_value", offending, user, detail, "profile")
    if isinstance(exc, TypeError) and isinstance(data, dict) and isinstance(data.get("birthdate"), int):
        return Error("bad_request", frozenset({"birthdate"}), user, detail, "profile")
    if isinstance(exc, AttributeError) and not isinstance(data, dict) and data is not ABSENT:
        return Error("bad_request", frozenset({"attrs._profile_data"}), user, detail, "profile")
    raise AssertionError(f"unmapped in-process error for {user} with {data!r}: {detail}") from exc


# ---------------------------------------------------------------------------
# Database helpers

WORKER_TABLES = ("signal_worker_applied", "signal_worker_object_sequence")


def clean_tables() -> None:
    """Empty every table the runs touch (users, profiles, tokens, outbox, worker state)."""
    from django.db import connection

    existing = set(connection.introspection.table_names())
    tables = [
        "accounts_userprofile",
        "authtoken_token",
        "auth_user_groups",
        "auth_user_user_permissions",
        "auth_user",
        "signal_bridge_outbox",
        "signal_bridge_deadletter",
        *WORKER_TABLES,
    ]
    with connection.cursor() as cursor:
        for table in tables:
            if table in existing:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The tables, user ids replaced by usernames (the two runs get different pks)."""

    users: tuple
    profiles: tuple  # (username, profile_type, sex, birthdate text) as stored
    tokens: tuple = ()  # (owner's username, "40 hex" or the malformed key): keys are random

    def __repr__(self) -> str:
        return f"users={list(self.users)} profiles={list(self.profiles)} tokens={list(self.tokens)}"


def snapshot() -> Snapshot:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT username FROM auth_user ORDER BY username")
        users = tuple(row[0] for row in cursor.fetchall())
        cursor.execute(
            # birthdate as text: as stored on SQLite (the driver would parse it into a date)
            "SELECT COALESCE(u.username, '#' || CAST(p.user_id AS TEXT)), p.profile_type, p.sex, "
            "CAST(p.birthdate AS TEXT) "
            "FROM accounts_userprofile p LEFT JOIN auth_user u ON u.id = p.user_id ORDER BY 1"
        )
        profiles = tuple(tuple(row) for row in cursor.fetchall())
        cursor.execute(
            "SELECT COALESCE(u.username, '#' || CAST(t.user_id AS TEXT)), t.\"key\" "
            "FROM authtoken_token t LEFT JOIN auth_user u ON u.id = t.user_id ORDER BY 1"
        )
        tokens = tuple(
            (owner, "40 hex" if TOKEN_KEY.fullmatch(key) else f"malformed key {key!r}")
            for owner, key in cursor.fetchall()
        )
    return Snapshot(users, profiles, tokens)


def save_step(step: Step):
    """Perform one create/update step; ``Missing()`` when the target user is gone."""
    from django.contrib.auth.models import User

    if step.kind == "create":
        user = User(username=step.username)
    else:
        user = User.objects.filter(username=step.username).first()  # a fresh instance
        if user is None:
            return Missing()
    if step.data is not ABSENT:
        user._profile_data = copy.deepcopy(step.data)
    if step.how == "raw":
        user.save_base(raw=True)
    elif step.how == "update_fields":
        user.save(update_fields=["username"])
    else:
        user.save()
    return Ok()


def delete_profile(step: Step) -> Ok:
    from accounts.models import UserProfile

    UserProfile.objects.filter(user__username=step.username).delete()
    return Ok()


def username_of(object_pk: str) -> str:
    from django.contrib.auth.models import User

    name = User.objects.filter(pk=int(object_pk)).values_list("username", flat=True).first()
    return name if name is not None else f"#{object_pk}"


# ---------------------------------------------------------------------------
# The two runs


@dataclasses.dataclass
class RunResult:
    outcomes: list
    snapshots: list
    notes: list  # what happened on the way (in-process exceptions, ...), for the report

    def lines(self, steps) -> list[str]:
        return [f"  {i}: {s!r}\n     -> {o!r}\n     {snap!r}" for i, (s, o, snap) in enumerate(zip(steps, self.outcomes, self.snapshots))]


class InProcessRun:
    """The reference: the Python receivers inside ``save()``, the bridge suspended."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor

    def run(self, steps) -> RunResult:
        import signal_bridge

        result = RunResult([], [], [])
        with signal_bridge.suspended(), receiver_connected():
            for step in steps:
                result.outcomes.append(self._step(step, result.notes))
                result.snapshots.append(snapshot())
        return result

    def _step(self, step: Step, notes: list):
        if step.kind == "delete_profile":
            return delete_profile(step)
        if step.kind == "block":
            return self._block(step, notes)
        try:
            return save_step(step)
        except Exception as exc:  # the receiver raised inside save(); the user row committed
            error = expected_error(exc, step.data, step.username, self.vendor)
            notes.append(f"{step!r}: {error.detail}")
            return error

    def _block(self, step: Step, notes: list):
        """An ``atomic()`` block, with the documented difference encoded.

        In process, an error inside ``save()`` leaves the block and rolls the
        whole block back: asserted here. The bridge cannot do that: the
        block's saves only write outbox rows, the block commits, and the
        messages are applied after commit, one by one, in order; the first
        error is raised from the block's exit, the messages after it stay in
        the outbox for the relay. :meth:`_deferred` computes that expected
        outcome with the same Python receiver, so the tables stay comparable.
        If the block was going to roll back anyway (``Rollback`` at its end),
        the bridge sends nothing and raises nothing of its own.
        """
        from django.db import transaction

        before = snapshot()
        failing = None
        try:
            with transaction.atomic():
                for sub in step.ops:
                    failing = sub
                    save_step(sub)
                failing = None
                if step.rollback:
                    raise Rollback
        except Rollback:
            assert snapshot() == before, "in process: a rolled-back block left changes"
            return RolledBack()
        except Exception as exc:
            assert failing is not None, f"error outside a save in {step!r}: {exc!r}"
            in_process = expected_error(exc, failing.data, failing.username, self.vendor)
            notes.append(f"{step!r}: in process {failing!r} raised {in_process.detail}; block rolled back")
            assert snapshot() == before, "in process: an error inside atomic() must roll the whole block back"
            if step.rollback:
                return RolledBack()
            expected = self._deferred(step)
            assert expected.first.code == in_process.code and expected.first.user == in_process.user, (
                f"deferred replay disagrees with the in-process failure: {expected.first!r} vs {in_process!r}"
            )
            return expected
        return Ok()

    def _deferred(self, step: Step) -> BlockError:
        """What the bridge does with the block: commit the saves, then apply each message."""
        from django.contrib.auth.models import User
        from django.db import transaction

        from accounts.in_process import run_receivers

        calls = []
        with receiver_disconnected(), transaction.atomic():
            for sub in step.ops:
                if isinstance(save_step(sub), Ok):
                    created = sub.kind == "create"
                    calls.append((sub, created))
        errors: list[tuple[int, Error]] = []
        for index, (sub, created) in enumerate(calls):
            instance = User.objects.get(username=sub.username)  # as the worker: reads the table now
            if sub.data is not ABSENT:
                instance._profile_data = copy.deepcopy(sub.data)
            try:  # the enabled receivers in one transaction, as the worker applies a message
                run_receivers(sender=User, instance=instance, created=created, raw=sub.how == "raw", using="default")
            except Exception as exc:
                errors.append((index, expected_error(exc, sub.data, sub.username, self.vendor)))
        assert errors, f"the block failed in process but its deferred replay did not: {step!r}"
        first_index, first = errors[0]
        return BlockError(first, len(calls) - first_index - 1, tuple(e for _, e in errors[1:]))


class BridgeRun:
    """The bridge in ``sync`` mode and the real worker; no receivers in process."""

    def run(self, steps) -> RunResult:
        result = RunResult([], [], [])
        with receiver_disconnected():
            for step in steps:
                result.outcomes.append(self._step(step, result.notes))
                result.snapshots.append(snapshot())
        return result

    def _step(self, step: Step, notes: list):
        import signal_bridge
        from signal_bridge.models import OutboxMessage

        if step.kind == "delete_profile":
            return delete_profile(step)
        if step.kind == "block":
            return self._block(step, notes)
        try:
            outcome = save_step(step)
        except signal_bridge.WorkerError as exc:
            notes.append(f"{step!r}: {exc}")
            outcome = Error(exc.code, frozenset({exc.field}), step.username, str(exc), exc.receiver)
        assert OutboxMessage.objects.count() == 0, f"autocommit sync left outbox rows after {step!r}"
        return outcome

    def _block(self, step: Step, notes: list):
        from django.db import transaction

        import signal_bridge
        from signal_bridge import relay
        from signal_bridge.models import DeadLetter, OutboxMessage

        last_letter = DeadLetter.objects.order_by("-id").values_list("id", flat=True).first() or 0
        signal_bridge.reset_stats()
        try:
            with transaction.atomic():
                for sub in step.ops:
                    save_step(sub)
                if step.rollback:
                    raise Rollback
        except Rollback:
            assert OutboxMessage.objects.count() == 0, "a rolled-back block left outbox rows"
            assert signal_bridge.stats().get("sent", 0) == 0, "a rolled-back block sent messages"
            return RolledBack()
        except signal_bridge.WorkerError as exc:
            notes.append(f"{step!r}: {exc}")
            left = OutboxMessage.objects.count()
            letter = DeadLetter.objects.get(message_id=exc.message_id)
            first = Error(exc.code, frozenset({exc.field}), username_of(letter.object_pk), str(exc), exc.receiver)
            relayed = relay.run(once=True)  # the relay sends what the failed callback left behind
            assert relayed.remaining == 0 and relayed.sent == left, f"relay after {step!r}: {relayed}"
            later = tuple(
                Error(d.code, frozenset({d.field}), username_of(d.object_pk), d.message)
                for d in DeadLetter.objects.filter(id__gt=letter.id).order_by("id")
            )
            assert DeadLetter.objects.filter(id__gt=last_letter).count() == 1 + len(later)
            return BlockError(first, left, later)
        assert OutboxMessage.objects.count() == 0, f"sync left outbox rows after {step!r}"
        return Ok()


# ---------------------------------------------------------------------------
# The in-process receivers on and off (``accounts.in_process``: the receivers
# ``settings.ACCOUNTS_RECEIVERS`` names, read on every save)


class receiver_connected:
    """Connect the reference receivers to the user model's ``post_save``."""

    def __enter__(self):
        from accounts import in_process

        in_process.connect()
        return self

    def __exit__(self, *exc):
        from accounts import in_process

        in_process.disconnect()
        return False


class receiver_disconnected:
    """Disconnect the reference receivers for a while (reconnect them if they were)."""

    def __enter__(self):
        from accounts import in_process

        self.was = in_process.disconnect()
        return self

    def __exit__(self, *exc):
        if self.was:
            from accounts import in_process

            in_process.connect()
        return False
