"""Checks of labs/10_grpc_fundamentals.ipynb: field masks, rich validation errors, a cancellable stream, a
deadline on the client, and concurrent calls with grpc.aio. Every check runs the learner's code in a real
server on a free loopback port, stopped before the check returns."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from infracourse.checking import done, exercise, expect, time_limit
from infracourse.checking.grpc_harness import Trap, serving, status_code
from infracourse.clients import protos
from infracourse.waiting import run_coroutine

protos.generate()
from infracourse.grpc_generated import market_pb2, market_pb2_grpc, users_pb2, users_pb2_grpc  # noqa: E402

CALL_TIMEOUT_S = 5


# --- Exercise 1 ----------------------------------------------------------------------------------------


@exercise("1", "Apply a field mask")
def apply_update(fn) -> str:
    current = users_pb2.User(id=7, email="ada@example.com", display_name="Ada", role=users_pb2.ROLE_EDITOR,
                             slack_handle="@ada")
    current.create_time.FromSeconds(1_700_000_000)
    before = current.SerializeToString()
    patch = users_pb2.User(id=99, email="eve@example.com", display_name="Ada Lovelace", role=users_pb2.ROLE_ADMIN)

    got = fn(current, patch, field_mask_pb2.FieldMask(paths=["display_name"]))
    done(got)
    expect(isinstance(got, users_pb2.User), f"apply_update returned {type(got).__name__}, not a User",
           hint="return the updated message")
    expect(current.SerializeToString() == before, "apply_update changed `current` in place",
           hint="work on a copy: updated = users_pb2.User(); updated.CopyFrom(current)")
    expect(got.display_name == "Ada Lovelace", "the masked field display_name was not copied from the patch")
    expect(got.id == 7 and got.email == "ada@example.com" and got.role == users_pb2.ROLE_EDITOR,
           "fields the mask does not name were changed",
           hint="copy only the paths in mask.paths; FieldMask.MergeMessage(source, destination) does that")
    expect(got.slack_handle == "@ada" and got.HasField("create_time"), "fields the mask does not name were lost",
           hint="start from a full copy of current")

    cleared = fn(current, users_pb2.User(role=users_pb2.ROLE_VIEWER),
                 field_mask_pb2.FieldMask(paths=["display_name", "role"]))
    expect(cleared.display_name == "" and cleared.role == users_pb2.ROLE_VIEWER,
           "a masked field that is empty in the patch should be cleared (the mask says: take this field as is)",
           hint="do not skip empty values; FieldMask.MergeMessage copies them")

    for paths, why in ((["id"], "id is set by the server"), (["create_time"], "create_time is set by the server"),
                       (["nickname"], "User has no field nickname"), ([], "an empty mask names nothing")):
        try:
            fn(current, patch, field_mask_pb2.FieldMask(paths=paths))
        except ValueError:
            continue
        expect(False, f"a mask with paths {paths} was accepted, but {why}",
               hint="raise ValueError unless every path is in UPDATABLE (and there is at least one)")
    return "copies, clears and refuses as it should"


# --- Exercise 2 ----------------------------------------------------------------------------------------


def _violations(err: grpc.RpcError) -> dict[str, str] | None:
    status = rpc_status.from_call(err)
    if status is None:
        return None
    found: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def _answered(code: grpc.StatusCode) -> None:
    expect(code != grpc.StatusCode.DEADLINE_EXCEEDED,
           f"CreateUser did not answer within {CALL_TIMEOUT_S} s",
           hint="look for a wait without a timeout: a pool connection never given back, or a transaction left open")


@exercise("2", "CreateUser: field violations and ALREADY_EXISTS")
def create_user(servicer) -> str:
    trap = Trap()

    class Probe(users_pb2_grpc.UserServiceServicer):
        CreateUser = staticmethod(trap.unary(servicer.CreateUser))

    with serving(lambda server: users_pb2_grpc.add_UserServiceServicer_to_server(Probe(), server)) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        invalid = users_pb2.CreateUserRequest(user=users_pb2.User(email="not-an-email", display_name="  "))
        err = None
        try:
            stub.CreateUser(invalid, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            err = exc  # kept whole: its rich status details are read below
        trap.raise_first()
        _answered(err.code() if err else grpc.StatusCode.OK)
        expect(err is not None, "CreateUser accepted a user with a bad email, a blank name and no role",
               hint="validate request.user before inserting")
        expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
               f"an invalid user got {err.code().name}; a request that is wrong in itself is INVALID_ARGUMENT")
        found = _violations(err)
        expect(found is not None, "the INVALID_ARGUMENT carries no rich status details",
               hint="context.abort_with_status(rpc_status.to_status(status)) with a google.rpc.Status whose "
                    "details hold a packed BadRequest")
        expect(found, "the rich status has no BadRequest with field violations",
               hint="pack an error_details_pb2.BadRequest into an any_pb2.Any and add it to status.details")
        expected = {"user.email", "user.display_name", "user.role"}
        expect(set(found) == expected,
               f"the field violations name {sorted(found)}; expected one for each of {sorted(expected)}",
               hint="collect every problem before aborting; name fields by their path from the request")
        expect(all(text.strip() for text in found.values()), "a field violation has an empty description")

        email = f"check-{uuid.uuid4().hex[:10]}@example.com"
        valid = users_pb2.CreateUserRequest(user=users_pb2.User(
            email=email, display_name="Checker", role=users_pb2.ROLE_VIEWER, phone="+1 555 0199"))
        try:
            created = stub.CreateUser(valid, timeout=CALL_TIMEOUT_S).user
        except grpc.RpcError as exc:
            trap.raise_first()
            _answered(exc.code())
            expect(False, f"a valid user was refused with {exc.code().name}: {exc.details()}")
        expect(created.id > 0 and created.email == email, "the response should hold the stored user, with its id")
        expect(created.HasField("create_time"), "the returned user has no create_time",
               hint="return the row that INSERT ... RETURNING gave back, converted with to_user")
        expect(created.phone == "+1 555 0199", "the phone number was not stored")

        code = status_code(stub.CreateUser, valid, timeout=CALL_TIMEOUT_S)
        trap.raise_first()
        _answered(code)
        expect(code != grpc.StatusCode.OK, "a second user with the same email was accepted",
               hint="the email column is UNIQUE; did the insert really run?")
        expect(code == grpc.StatusCode.ALREADY_EXISTS, f"a duplicate email got {code.name}; expected ALREADY_EXISTS",
               hint="catch psycopg.errors.UniqueViolation and abort with ALREADY_EXISTS")
    return "3 field violations, then created, then ALREADY_EXISTS"


# --- Exercise 3 ----------------------------------------------------------------------------------------


class _CountingFeed:
    """Prices 100.00, 100.01, ... per symbol; remembers every price it handed out."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handed_out: list[tuple[str, int]] = []

    def next_price(self, symbol: str) -> int:
        with self.lock:
            price = 100_00 + sum(1 for s, _ in self.handed_out if s == symbol)
            self.handed_out.append((symbol, price))
            return price


def _market_probe(servicer, trap: Trap, ended: threading.Event):
    watch = trap.streaming(servicer.WatchPrices)

    class Probe(market_pb2_grpc.MarketServiceServicer):
        def WatchPrices(self, request, context):
            try:
                yield from watch(request, context)
            finally:
                ended.set()

    return Probe()


@exercise("3", "A price stream that stops when the client cancels")
def watch_prices(servicer_class) -> str:
    trap, ended = Trap(), threading.Event()
    feed = _CountingFeed()
    fast = _market_probe(servicer_class(feed=feed, tick_s=0.02), trap, ended)
    with serving(lambda server: market_pb2_grpc.add_MarketServiceServicer_to_server(fast, server)) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = market_pb2_grpc.MarketServiceStub(channel)
        request = market_pb2.WatchPricesRequest(symbols=["ACME", "GLOBEX"], max_ticks=4)
        try:
            ticks = list(stub.WatchPrices(request, timeout=CALL_TIMEOUT_S))
        except grpc.RpcError as err:
            trap.raise_first()
            expect(err.code() != grpc.StatusCode.DEADLINE_EXCEEDED,
                   f"with max_ticks=4, WatchPrices was still streaming after {CALL_TIMEOUT_S} s",
                   hint="stop after request.max_ticks ticks")
            expect(False, f"WatchPrices ended with {err.code().name}: {err.details()}")
        trap.raise_first()
        expect(len(ticks) == 4, f"max_ticks=4 gave {len(ticks)} ticks", hint="stop after request.max_ticks ticks")
        expect([t.sequence for t in ticks] == [1, 2, 3, 4], "sequence should count the ticks of the stream from 1")
        expect([t.symbol for t in ticks] == ["ACME", "GLOBEX", "ACME", "GLOBEX"],
               f"the symbols were {[t.symbol for t in ticks]}; take turns through request.symbols")
        expect([(t.symbol, t.price_cents) for t in ticks] == feed.handed_out[:4],
               "the prices are not the ones self.feed.next_price(symbol) returned")
        code = status_code(lambda r, **kw: list(stub.WatchPrices(r, **kw)), market_pb2.WatchPricesRequest(),
                           timeout=CALL_TIMEOUT_S)
        expect(code == grpc.StatusCode.INVALID_ARGUMENT,
               "a request without symbols should end with INVALID_ARGUMENT",
               hint="check request.symbols before the loop and context.abort(...)")

    ended.clear()
    slow = _market_probe(servicer_class(feed=_CountingFeed(), tick_s=0.5), trap, ended)
    with serving(lambda server: market_pb2_grpc.add_MarketServiceServicer_to_server(slow, server)) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = market_pb2_grpc.MarketServiceStub(channel).WatchPrices(
            market_pb2.WatchPricesRequest(symbols=["ACME"]), timeout=CALL_TIMEOUT_S)
        try:
            first = next(call, None)
        except grpc.RpcError as err:
            trap.raise_first()
            expect(False, f"with max_ticks=0, WatchPrices ended with {err.code().name}: {err.details()}")
        expect(first is not None, "with max_ticks=0, WatchPrices ended without a single tick",
               hint="max_ticks=0 means no limit: tick until the client cancels")
        time.sleep(0.1)  # the server is now between two ticks
        call.cancel()
        cancelled = time.monotonic()
        ended.wait(2)
        lingered_s = time.monotonic() - cancelled
    trap.raise_first()
    expect(lingered_s < 0.25,
           f"with tick_s=0.5, WatchPrices kept running {lingered_s:.2f} s after the client cancelled",
           hint="instead of time.sleep, wait on a threading.Event that context.add_callback sets")
    return "4 ticks, INVALID_ARGUMENT without symbols, and it stops on cancel"


# --- Exercise 4 ----------------------------------------------------------------------------------------

SLOW_SERVER_S = 1.5


class _UsersWithOneSlow(users_pb2_grpc.UserServiceServicer):
    """id 1: found at once; id 2: found after SLOW_SERVER_S; anything else: NOT_FOUND."""

    def GetUser(self, request, context):
        if request.id == 2:
            gone = threading.Event()
            context.add_callback(gone.set)
            gone.wait(SLOW_SERVER_S)
        if request.id not in (1, 2):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.id}")
        return users_pb2.GetUserResponse(user=users_pb2.User(id=request.id, email=f"u{request.id}@example.com"))


@exercise("4", "A client with a deadline")
def fetch_user(fn) -> str:
    servicer = _UsersWithOneSlow()
    with serving(lambda server: users_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        try:
            got = time_limit.call(CALL_TIMEOUT_S, fn, stub, 1, 0.3)
        except grpc.RpcError as err:
            expect(False, f"fetch_user(stub, 1, 0.3) raised {err.code().name}: {err.details()}")
        done(got)
        expect(isinstance(got, users_pb2.User) and got.id == 1,
               f"fetch_user(stub, 1, 0.3) returned {type(got).__name__}; expected the User with id 1",
               hint="return response.user")
        started = time.monotonic()
        try:
            slow = time_limit.call(CALL_TIMEOUT_S, fn, stub, 2, 0.3)
        except grpc.RpcError as err:
            expect(False, f"on a slow server fetch_user raised {err.code().name}; return None when time runs out",
                   hint="catch grpc.RpcError and look at err.code()")
        waited_s = time.monotonic() - started
        expect(waited_s < 1.0, f"fetch_user waited {waited_s:.1f} s for a slow server although timeout_s was 0.3",
               hint="pass timeout=timeout_s to the stub method")
        expect(slow is None, f"when the deadline passes fetch_user should return None, not {slow!r}")
        try:
            missing = time_limit.call(CALL_TIMEOUT_S, fn, stub, 3, 0.3)
        except grpc.RpcError as err:
            expect(err.code() == grpc.StatusCode.NOT_FOUND,
                   f"a missing user should raise the NOT_FOUND error, got {err.code().name}")
        else:
            expect(False, f"a NOT_FOUND error was swallowed (fetch_user returned {missing!r})",
                   hint="catch only DEADLINE_EXCEEDED and re-raise every other error")
    return "found, gave up in time, and let NOT_FOUND through"


# --- Exercise 5 ----------------------------------------------------------------------------------------

AIO_DELAY_S, AIO_LIMIT_S = 0.2, 10
AIO_IDS = [5, 3, 404, 1, 2, 4, 6, 7, 8, 9]


class _SlowAsyncUsers(users_pb2_grpc.UserServiceServicer):
    async def GetUser(self, request, context):
        await asyncio.sleep(AIO_DELAY_S)
        if request.id == 404:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no user with id 404")
        return users_pb2.GetUserResponse(user=users_pb2.User(id=request.id))


@exercise("5", "Many users at once with grpc.aio", stretch=True)
def fetch_many(fn) -> str:
    async def scenario():
        server = grpc.aio.server()
        users_pb2_grpc.add_UserServiceServicer_to_server(_SlowAsyncUsers(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                started = time.monotonic()
                result = await fn(users_pb2_grpc.UserServiceStub(channel), list(AIO_IDS))
                return result, time.monotonic() - started
        finally:
            await server.stop(grace=None)

    try:
        result, elapsed_s = run_coroutine(scenario, timeout_s=AIO_LIMIT_S)
    except grpc.aio.AioRpcError as err:
        expect(False, f"fetch_many raised {err.code().name}: {err.details()}",
               hint="catch grpc.aio.AioRpcError in the coroutine of each id and turn NOT_FOUND into None")
    except TimeoutError:
        expect(False, f"fetch_many did not return within {AIO_LIMIT_S} s",
               hint="look for an await that never completes, or a blocking call such as time.sleep in a coroutine")
    done(result)
    expect(isinstance(result, list) and len(result) == len(AIO_IDS),
           f"fetch_many should return a list with one entry per id ({len(AIO_IDS)}), got {result!r:.80}")
    one_by_one_s = AIO_DELAY_S * len(AIO_IDS)
    expect(elapsed_s < one_by_one_s / 2,
           f"{len(AIO_IDS)} calls of {AIO_DELAY_S} s took {elapsed_s:.1f} s: they ran one after another",
           hint="start every call first, then await them together with asyncio.gather")
    got_ids = [None if user is None else getattr(user, "id", "?") for user in result]
    expected = [None if i == 404 else i for i in AIO_IDS]
    expect(got_ids == expected, f"got ids {got_ids}; expected {expected} (the order of ids, None when not found)",
           hint="gather keeps the order of its arguments; turn NOT_FOUND into None")
    return f"{len(AIO_IDS)} calls overlapped, in order"
