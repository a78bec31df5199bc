"""Expected outcomes of stdlib asyncio tests on the loop under test.

Test ids are ``module.Class.method`` (the unittest id without the
``test.test_asyncio.`` prefix); patterns are ``fnmatch`` globs on them.
``EXPECTATIONS`` is keyed by ``"*"`` (every version) and ``"3.X"``; for a test
the version-specific entries are tried first, then the common ones; the first
match wins.

Kinds:

``BUG``        a fastloop bug: xfail(strict=True). When it is fixed the test
               XPASSes, which fails the run: remove the entry then.
``TRANSPORT``  needs transports/sockets/pipes/subprocesses/SSL/sendfile, which
               are later work: xfail(strict=False), reason
               "needs transports (issue 3/4)".
``INTERNAL``   introspects private selector-loop internals (``_selector``,
               ``_ready``, ``_scheduled``, ``_run_once`` mocks ...): skipped.
``HARNESS``    cannot run meaningfully in this harness whatever the loop.
``ASYNCIO_HARNESS``  only for ``FASTLOOP_CONFORMANCE_LOOP=asyncio``: the test
               replaces internals that a real asyncio selector loop needs
               (e.g. mocks ``_write_to_self``, which kills its wake-up) because
               it was written for a mocked ``BaseEventLoop``; harmless on
               fastloop, which has no such internals and runs it.

Entries that do not apply to the loop under test are passed over (so a test
may have a BUG entry followed by an ASYNCIO_HARNESS one). With
``FASTLOOP_CONFORMANCE_LOOP=asyncio`` BUG and TRANSPORT entries do not apply:
everything not skipped must pass on the stdlib loop, which proves the harness.
"""

BUG = "bug"
TRANSPORT = "transport"
INTERNAL = "internal"
HARNESS = "harness"
ASYNCIO_HARNESS = "asyncio-harness"

KINDS = (BUG, TRANSPORT, INTERNAL, HARNESS, ASYNCIO_HARNESS)

# kinds that apply to each loop under test
APPLIES = {
    "fastloop": (BUG, TRANSPORT, INTERNAL, HARNESS),
    "asyncio": (INTERNAL, HARNESS, ASYNCIO_HARNESS),
}
# kinds that skip the test
SKIP_KINDS = (INTERNAL, HARNESS, ASYNCIO_HARNESS)

TRANSPORTS = "needs transports (issue 3/4)"

MOCKED_WAKEUP = (
    "mocks loop._write_to_self/_process_events (written for a mocked "
    "BaseEventLoop): a real asyncio selector loop then never wakes up"
)

PATCH_SOCKET = (
    "@patch_socket mocks asyncio.base_events.socket, the socket module seen "
    "by the stdlib loop's own create_connection/create_server/"
    "create_datagram_endpoint code; the loop under test never sees the mock"
)

# (pattern, kind, reason)
EXPECTATIONS = {
    "*": [
        ("test_base_events.BaseEventLoopTests.test_asyncgen_finalization_by_gc_in_other_thread",
         ASYNCIO_HARNESS, MOCKED_WAKEUP),
        ("test_base_events.BaseEventLoopTests.test_check_thread",
         ASYNCIO_HARNESS, MOCKED_WAKEUP),
        # -- test_base_events.BaseEventLoopTests: built around a mocked
        #    BaseEventLoop; these poke its private machinery.
        ("test_base_events.BaseEventLoopTests.test__add_callback_*", INTERNAL,
         "calls the stdlib loop's private _add_callback() and inspects "
         "loop._ready / loop._scheduled"),
        ("test_base_events.BaseEventLoopTests.test__run_once", INTERNAL,
         "drives loop._run_once() with a mocked loop._selector and inspects "
         "the loop._scheduled heap"),
        ("test_base_events.BaseEventLoopTests.test__run_once_cancelled_event_cleanup",
         INTERNAL, "loop._scheduled heap compaction via loop._timer_cancelled_count"),
        ("test_base_events.BaseEventLoopTests.test__run_once_schedule_handle",
         INTERNAL, "inspects loop._ready / loop._scheduled around loop._run_once()"),
        ("test_base_events.BaseEventLoopTests.test_call_later", INTERNAL,
         "inspects the loop._scheduled heap"),
        ("test_base_events.BaseEventLoopTests.test_call_soon", INTERNAL,
         "inspects the loop._ready deque"),
        ("test_base_events.BaseEventLoopTests.test_not_implemented", INTERNAL,
         "the stdlib BaseEventLoop's private abstract hooks (_make_*_transport, "
         "_process_events, _write_to_self) must raise NotImplementedError"),
        ("test_base_events.BaseEventLoopTests.test_run_forever_pre_stopped", INTERNAL,
         "asserts loop._selector.select() was called with timeout 0"),
        ("test_base_events.BaseEventLoopTests.test_single_selecter_event_callback_after_stopping",
         INTERNAL, "feeds selector events through a mocked loop._selector / "
         "loop._process_events"),
        # -- test_base_events.BaseEventLoopWithSelectorTests
        ("test_base_events.BaseEventLoopWithSelectorTests.test_accept_connection_*",
         INTERNAL, "calls the selector loop's private _accept_connection()"),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_bluetooth",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_ip_addr",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_ipv6_scope",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_multiple_errors",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_multiple_errors_local_addr",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_no_inet_pton",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_service_name",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_timeout",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_cant_bind",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_ip_addr",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_no_addrinfo",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_nosoreuseport",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_setblk_err",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_socket_err",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_server_nosoreuseport",
         INTERNAL, PATCH_SOCKET),
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_server_soreuseport_only_defined",
         INTERNAL, PATCH_SOCKET),
        # -- test_events.EventLoopTests
        ("test_events.EventLoopTests.test_timeout_rounding", INTERNAL,
         "replaces loop._run_once to count iterations and reports "
         "loop._selector"),
        # -- transport suites (FASTLOOP_CONFORMANCE_TRANSPORTS=1)
        ("test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_not_available",
         INTERNAL, "patches asyncio.unix_events.os (the stdlib Unix loop's os module)"),
        ("test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_*",
         INTERNAL, "drives or mocks the stdlib Unix loop's private "
         "_sock_sendfile_native_impl()"),
        ("test_unix_events.SelectorEventLoopUnixSocketTests.test_create_unix_server_bind_error",
         INTERNAL, "patches asyncio.unix_events.socket (the stdlib Unix loop's "
         "socket module)"),
        # -- test_tasks
        ("test_tasks.*.test_log_destroyed_pending_task", INTERNAL,
         "steps the loop with loop._run_once() and asserts len(loop._ready) == 0"),
        ("test_tasks.CoroutineGatherTests.test_issue46672", INTERNAL,
         "patches asyncio.base_events.BaseEventLoop.call_exception_handler "
         "(a method of the stdlib loop class)"),
    ],
    "3.9": [
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_ssl_server_hostname_default",
         INTERNAL, "mocks the loop's private _make_ssl_transport() and asserts "
         "its exact arguments (fastloop passes ssl_shutdown_timeout=None, a "
         "3.11+ argument of that private hook)"),
    ],
    "3.10": [
        ("test_base_events.BaseEventLoopWithSelectorTests.test_create_connection_ssl_server_hostname_default",
         INTERNAL, "mocks the loop's private _make_ssl_transport() and asserts "
         "its exact arguments (fastloop passes ssl_shutdown_timeout=None, a "
         "3.11+ argument of that private hook)"),
    ],
    "3.11": [
    ],
    "3.12": [
        ("test_server.TestServer2.test_wait_closed_*", INTERNAL,
         "calls the private Server._attach() with its 3.12 signature (no "
         "argument); fastloop's Server._attach(transport) has the 3.13 one"),
    ],
    "3.13": [
        ("test_base_events.BaseEventLoopTests.test_custom_run_forever_integration",
         INTERNAL, "after _run_forever_setup() (is_running() is True there) it "
         "calls _run_once() 10 times with nothing scheduled and checks "
         "_process_events.call_count == 10: written for a mocked selector "
         "that returns at once; a real loop blocks in its poll"),
        ("test_base_events.BaseEventLoopTests.test_custom_run_forever_integration",
         ASYNCIO_HARNESS, "calls loop._run_once() 10 times with a mocked "
         "_process_events: a real asyncio selector loop blocks in select()"),
        ("test_base_events.BaseEventLoopTests.test_shutdown_default_executor_timeout",
         ASYNCIO_HARNESS, MOCKED_WAKEUP),
    ],
}
