"""Lab 10 checks fail plausible wrong answers with a message that helps, and pass the reference answers."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
import time

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import psycopg
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from psycopg_pool import ConnectionPool
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab10 as checks
from infracourse.grpc_generated import market_pb2, market_pb2_grpc, users_pb2, users_pb2_grpc

# --- Exercise 1: apply_update -------------------------------------------------------------------------

UPDATABLE = {"email", "display_name", "role"}


def reference_apply_update(current, patch, mask):
    refused = [path for path in mask.paths if path not in UPDATABLE]
    if not mask.paths or refused:
        raise ValueError(f"cannot update {refused or 'nothing'}")
    updated = users_pb2.User()
    updated.CopyFrom(current)
    mask.MergeMessage(patch, updated)
    return updated


def test_apply_update_reference_passes():
    assert_passes(checks.apply_update(reference_apply_update))


def test_apply_update_stub_is_not_done():
    def stub(current, patch, mask):
        raise NotImplementedError

    assert_not_done(checks.apply_update(stub))


def test_apply_update_merge_from_ignores_the_mask():
    def merge_everything(current, patch, mask):
        updated = users_pb2.User()
        updated.CopyFrom(current)
        updated.MergeFrom(patch)
        return updated

    assert_fails(checks.apply_update(merge_everything), "does not name were changed")


def test_apply_update_in_place_is_reported():
    def in_place(current, patch, mask):
        mask.MergeMessage(patch, current)
        return current

    result = checks.apply_update(in_place)
    assert_fails(result, "in place", in_hint=("CopyFrom",))


def test_apply_update_that_skips_empty_values_fails():
    def skip_empty(current, patch, mask):
        if not mask.paths or set(mask.paths) - UPDATABLE:
            raise ValueError("bad mask")
        updated = users_pb2.User()
        updated.CopyFrom(current)
        for path in mask.paths:
            if getattr(patch, path):
                setattr(updated, path, getattr(patch, path))
        return updated

    assert_fails(checks.apply_update(skip_empty), "cleared")


def test_apply_update_without_validation_fails():
    def trusting(current, patch, mask):
        updated = users_pb2.User()
        updated.CopyFrom(current)
        mask.MergeMessage(patch, updated)
        return updated

    result = checks.apply_update(trusting)
    assert_fails(result, "['id'] was accepted", in_hint=("ValueError",))


# --- Exercise 2: CreateUser ---------------------------------------------------------------------------

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
COLUMNS = "id, email, display_name, role, phone, slack_handle, created_at"


@pytest.fixture
def pool(conn, pg_ns):
    conn.execute("""CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email text NOT NULL UNIQUE, display_name text NOT NULL, role text NOT NULL, phone text,
        slack_handle text, created_at timestamptz NOT NULL DEFAULT now())""")
    with ConnectionPool(pg_ns.postgres_dsn(), min_size=1, max_size=2, kwargs={"autocommit": True}, open=True) as p:
        yield p


def _problems(user):
    found = []
    if not EMAIL.fullmatch(user.email):
        found.append(("user.email", "must look like name@example.com"))
    if not user.display_name.strip():
        found.append(("user.display_name", "must not be blank"))
    if user.role == users_pb2.ROLE_UNSPECIFIED:
        found.append(("user.role", "must be set"))
    return found


def _rich(found):
    details = any_pb2.Any()
    details.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in found]))
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid",
                                                  details=[details]))


def _insert(pool, user):
    with pool.connection() as c:
        row = c.execute(f"INSERT INTO users (email, display_name, role, phone, slack_handle) VALUES "
                        f"(%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                        (user.email, user.display_name, users_pb2.Role.Name(user.role), user.phone or None,
                         user.slack_handle or None)).fetchone()
    stored = users_pb2.User(id=row[0], email=row[1], display_name=row[2], role=users_pb2.Role.Value(row[3]),
                            phone=row[4], slack_handle=row[5])
    stored.create_time.FromDatetime(row[6])
    return users_pb2.CreateUserResponse(user=stored)


class ReferenceUsers(users_pb2_grpc.UserServiceServicer):
    def __init__(self, pool):
        self.pool = pool

    def CreateUser(self, request, context):
        if found := _problems(request.user):
            context.abort_with_status(_rich(found))
        try:
            return _insert(self.pool, request.user)
        except psycopg.errors.UniqueViolation:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "taken")


def test_create_user_reference_passes(pool):
    assert_passes(checks.create_user(ReferenceUsers(pool)))


def test_create_user_stub_is_not_done(pool):
    class Stub(users_pb2_grpc.UserServiceServicer):
        def CreateUser(self, request, context):
            raise NotImplementedError

    assert_not_done(checks.create_user(Stub()))


def test_create_user_without_details_fails(pool):
    class PlainAbort(ReferenceUsers):
        def CreateUser(self, request, context):
            if _problems(request.user):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid user")
            return super().CreateUser(request, context)

    result = checks.create_user(PlainAbort(pool))
    assert_fails(result, "no rich status", in_hint=("abort_with_status",))


def test_create_user_reporting_only_the_first_problem_fails(pool):
    class FirstOnly(ReferenceUsers):
        def CreateUser(self, request, context):
            if found := _problems(request.user):
                context.abort_with_status(_rich(found[:1]))
            return super().CreateUser(request, context)

    assert_fails(checks.create_user(FirstOnly(pool)), "field violations name ['user.email']")


def test_create_user_with_the_wrong_code_fails(pool):
    class Precondition(ReferenceUsers):
        def CreateUser(self, request, context):
            if _problems(request.user):
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "invalid user")
            return super().CreateUser(request, context)

    assert_fails(checks.create_user(Precondition(pool)), "FAILED_PRECONDITION", "INVALID_ARGUMENT", hint=False)


def test_create_user_raising_an_exception_is_reported(pool):
    class Raises(ReferenceUsers):
        def CreateUser(self, request, context):
            if _problems(request.user):
                raise ValueError("bad user")
            return super().CreateUser(request, context)

    assert_fails(checks.create_user(Raises(pool)), "raised ValueError")


def test_create_user_letting_unique_violation_escape_fails(pool):
    class NoDuplicateHandling(ReferenceUsers):
        def CreateUser(self, request, context):
            if found := _problems(request.user):
                context.abort_with_status(_rich(found))
            return _insert(self.pool, request.user)

    assert_fails(checks.create_user(NoDuplicateHandling(pool)), "UniqueViolation")


def test_create_user_that_never_answers_is_cut_off():
    released = threading.Event()

    class Stuck(users_pb2_grpc.UserServiceServicer):
        def CreateUser(self, request, context):
            released.wait(30)  # a pool connection that never comes back

    try:
        result = checks.create_user(Stuck())
    finally:
        released.set()
    assert_fails(result, "did not answer within", in_hint=("pool",))


# --- Exercise 3: WatchPrices --------------------------------------------------------------------------


class ReferenceMarket(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, feed, tick_s=0.1):
        self.feed, self.tick_s = feed, tick_s

    def WatchPrices(self, request, context):
        if not request.symbols:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no symbols")
        yield from self.ticks(request, context)

    def ticks(self, request, context):
        """Every tick_s until the client cancels or max_ticks (0: no limit) ticks were sent."""
        ended = threading.Event()
        context.add_callback(ended.set)
        sequence = 0
        while not ended.wait(self.tick_s) and (request.max_ticks == 0 or sequence < request.max_ticks):
            sequence += 1
            yield self.tick(request, sequence)

    def tick(self, request, sequence):
        """The tick numbered SEQUENCE (from 1): the symbols take turns."""
        symbol = request.symbols[(sequence - 1) % len(request.symbols)]
        return market_pb2.WatchPricesResponse(symbol=symbol, price_cents=self.feed.next_price(symbol),
                                              sequence=sequence)


def test_watch_prices_reference_passes():
    assert_passes(checks.watch_prices(ReferenceMarket))


def test_watch_prices_stub_is_not_done():
    class Stub(ReferenceMarket):
        def WatchPrices(self, request, context):
            raise NotImplementedError

    assert_not_done(checks.watch_prices(Stub))


def test_watch_prices_that_sleeps_blindly_fails():
    class Sleeper(ReferenceMarket):
        def ticks(self, request, context):
            sequence = 0
            while context.is_active() and (request.max_ticks == 0 or sequence < request.max_ticks):
                time.sleep(self.tick_s)
                sequence += 1
                yield self.tick(request, sequence)

    result = checks.watch_prices(Sleeper)
    assert_fails(result, "after the client cancelled", in_hint=("Event",))


def test_watch_prices_without_symbol_check_fails():
    class NoValidation(ReferenceMarket):
        def WatchPrices(self, request, context):
            yield from self.ticks(request, context)

    assert_fails(checks.watch_prices(NoValidation), "without symbols")


def test_watch_prices_counting_from_zero_fails():
    class FromZero(ReferenceMarket):
        def WatchPrices(self, request, context):
            for tick in super().WatchPrices(request, context):
                tick.sequence -= 1
                yield tick

    assert_fails(checks.watch_prices(FromZero), "from 1", hint=False)


def test_watch_prices_ignoring_max_ticks_is_cut_off():
    class Endless(ReferenceMarket):
        def ticks(self, request, context):
            for sequence in itertools.count(1):
                time.sleep(self.tick_s)
                yield self.tick(request, sequence)

    result = checks.watch_prices(Endless)
    assert_fails(result, "still streaming", in_hint=("max_ticks",))


def test_watch_prices_with_no_ticks_for_max_ticks_zero_fails():
    class Counted(ReferenceMarket):
        def ticks(self, request, context):
            for sequence in range(1, request.max_ticks + 1):
                yield self.tick(request, sequence)

    assert_fails(checks.watch_prices(Counted), "max_ticks=0", "without a single tick")


# --- Exercise 4: fetch_user ---------------------------------------------------------------------------


def reference_fetch_user(stub, user_id, timeout_s):
    try:
        return stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=timeout_s).user
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return None
        raise


def test_fetch_user_reference_passes():
    assert_passes(checks.fetch_user(reference_fetch_user))


def test_fetch_user_without_timeout_fails():
    def no_deadline(stub, user_id, timeout_s):
        return stub.GetUser(users_pb2.GetUserRequest(id=user_id)).user

    result = checks.fetch_user(no_deadline)
    assert_fails(result, "waited", in_hint=("timeout=",))


def test_fetch_user_that_swallows_every_error_fails():
    def swallow(stub, user_id, timeout_s):
        try:
            return stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=timeout_s).user
        except grpc.RpcError:
            return None

    assert_fails(checks.fetch_user(swallow), "NOT_FOUND error was swallowed")


def test_fetch_user_returning_the_response_fails():
    def whole_response(stub, user_id, timeout_s):
        return stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=timeout_s)

    result = checks.fetch_user(whole_response)
    assert_fails(result, "GetUserResponse", in_hint=("response.user",))


def test_fetch_user_that_retries_forever_is_cut_off():
    def retry_until_found(stub, user_id, timeout_s):
        while True:  # ends once the check closes the channel (ValueError)
            try:
                return stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=timeout_s).user
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise

    assert_fails(checks.fetch_user(retry_until_found), "did not return within")


# --- Exercise 5: fetch_many ---------------------------------------------------------------------------


async def reference_fetch_many(stub, ids):
    async def one(user_id):
        try:
            return (await stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=5)).user
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    return list(await asyncio.gather(*(one(user_id) for user_id in ids)))


def test_fetch_many_reference_passes():
    assert_passes(checks.fetch_many(reference_fetch_many))


def test_fetch_many_one_after_another_fails():
    async def sequential(stub, ids):
        users = []
        for user_id in ids:
            try:
                users.append((await stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=5)).user)
            except grpc.aio.AioRpcError:
                users.append(None)
        return users

    result = checks.fetch_many(sequential)
    assert_fails(result, "one after another", in_hint=("gather",))


def test_fetch_many_in_completion_order_fails():
    async def as_they_come(stub, ids):
        async def one(user_id):
            await asyncio.sleep(0.01 * (user_id % 5))  # finish in a different order than asked
            return await reference_fetch_many(stub, [user_id])

        return [users[0] for users in [await c for c in asyncio.as_completed([one(i) for i in ids])]]

    assert_fails(checks.fetch_many(as_they_come), "order of ids")


def test_fetch_many_stub_is_not_done():
    async def stub(stub_, ids):
        raise NotImplementedError

    assert_not_done(checks.fetch_many(stub))


def test_fetch_many_without_not_found_handling_fails():
    async def lets_errors_through(stub, ids):
        calls = (stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=5) for user_id in ids)
        return [response.user for response in await asyncio.gather(*calls)]

    result = checks.fetch_many(lets_errors_through)
    assert_fails(result, "raised NOT_FOUND", in_hint=("None",))


def test_fetch_many_that_awaits_forever_is_cut_off():
    async def waits_for_nothing(stub, ids):
        queue = asyncio.Queue()
        for user_id in ids:
            queue.put_nowait(user_id)
        await queue.join()  # no worker ever calls task_done()

    started = time.monotonic()
    assert_fails(checks.fetch_many(waits_for_nothing), "did not return within")
    assert time.monotonic() - started < checks.AIO_LIMIT_S + 5


# requirements the tests above did not break on their own -----------------------------------------------
def test_apply_update_accepting_an_empty_mask_fails():
    def no_empty_check(current, patch, mask):
        if any(path not in {"display_name", "role", "phone", "slack_handle", "email"} for path in mask.paths):
            raise ValueError(f"cannot update {list(mask.paths)}")
        updated = users_pb2.User()
        updated.CopyFrom(current)
        mask.MergeMessage(patch, updated)
        return updated

    assert_fails(checks.apply_update(no_empty_check), "empty")


def test_create_user_naming_fields_without_the_request_path_fails(pool):
    class ShortNames(ReferenceUsers):
        def CreateUser(self, request, context):
            if found := _problems(request.user):
                context.abort_with_status(_rich([(f.removeprefix("user."), d) for f, d in found]))
            return super().CreateUser(request, context)

    assert_fails(checks.create_user(ShortNames(pool)), "user.email")


def test_watch_prices_repeating_the_first_symbol_fails():
    class OneSymbol(ReferenceMarket):
        def tick(self, request, sequence):
            symbol = request.symbols[0]
            return market_pb2.WatchPricesResponse(symbol=symbol, price_cents=self.feed.next_price(symbol),
                                                  sequence=sequence)

    assert_fails(checks.watch_prices(OneSymbol), "take turns", hint=False)


REQUIREMENTS = {
    "1": {
        "It returns a **new** `User`": "test_apply_update_in_place_is_reported",
        "with exactly the fields named in\n`mask.paths` taken from `patch`":
            "test_apply_update_merge_from_ignores_the_mask",
        "even when a value in `patch` is empty": "test_apply_update_that_skips_empty_values_fails",
        "`current` itself is not modified": "test_apply_update_in_place_is_reported",
        "If the mask is empty": "test_apply_update_accepting_an_empty_mask_fails",
        "or\nnames a field outside `UPDATABLE`, raise `ValueError`.": "test_apply_update_without_validation_fails",
    },
    "2": {
        "collect **every** problem before answering": "test_create_user_reporting_only_the_first_problem_fails",
        "end the call with `INVALID_ARGUMENT`": "test_create_user_with_the_wrong_code_fails",
        "a rich status whose details hold a `google.rpc.BadRequest`": "test_create_user_without_details_fails",
        "Name the fields by their path in the request": "test_create_user_naming_fields_without_the_request_path_fails",
        "answer `ALREADY_EXISTS`": "test_create_user_letting_unique_violation_escape_fails",
    },
    "3": {
        "taking turns: first, second, ..., first\nagain": "test_watch_prices_repeating_the_first_symbol_fails",
        "a `sequence` counting the ticks from 1": "test_watch_prices_counting_from_zero_fails",
        "It stops\nafter `request.max_ticks` ticks": "test_watch_prices_ignoring_max_ticks_is_cut_off",
        "(0 means \"until the client cancels\")": "test_watch_prices_with_no_ticks_for_max_ticks_zero_fails",
        "A request without symbols ends with\n`INVALID_ARGUMENT`.": "test_watch_prices_without_symbol_check_fails",
        "the method must stop **at once**": "test_watch_prices_that_sleeps_blindly_fails",
    },
    "4": {
        "with a deadline of `timeout_s` seconds": "test_fetch_user_without_timeout_fails",
        "returns the `User`": "test_fetch_user_returning_the_response_fails",
        "Any other error (such as `NOT_FOUND`) is\nraised to the caller unchanged.": (
            "test_fetch_user_that_swallows_every_error_fails",),
    },
    "5": {
        "Fetch every id **concurrently**": "test_fetch_many_one_after_another_fails",
        "return a list in the order of `ids`": "test_fetch_many_in_completion_order_fails",
        "or `None` where the server answers `NOT_FOUND`": "test_fetch_many_without_not_found_handling_fails",
    },
}
