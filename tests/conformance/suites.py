"""Which stdlib ``test.test_asyncio`` modules run, and how each is bound.

Binding strategies, least invasive first:

1. **Policy** (every module): for each test the runner installs the policy
   under test (``asyncio.set_event_loop_policy``) *and* points the name
   ``asyncio.DefaultEventLoopPolicy`` at it, so ``asyncio.new_event_loop()``,
   ``asyncio.run()``, ``asyncio.Runner`` and ``unittest.IsolatedAsyncioTestCase``
   all get a loop under test, even after a test resets the policy with
   ``set_event_loop_policy(None)``.
2. **test_utils.TestCase.new_test_loop** (every module): without a time
   generator it returns a loop under test (the stdlib ``TestLoop`` made that
   way has no virtual clock to speak of: it cannot even run a timer). With a
   generator the test is about asyncio on a virtual clock, not about the loop
   under test: skipped by default (``FASTLOOP_CONFORMANCE_TESTLOOP=run`` runs
   it as-is on the stdlib ``TestLoop``).
3. **Adapters** (per class, below): a subclass overriding the one method that
   builds a stdlib loop (``create_event_loop``, ``setUp``, ``new_loop``).
   Adapted classes keep the stdlib class name and module, so test ids stay
   ``module.Class.method``.

Classes that only exercise a *stdlib* loop implementation or asyncio helper
functions are excluded (not collected); the reason is recorded here.
"""
import sys

from . import loops

# "1": also collect the transport suites (Suite(transports=True) and
# transport_classes): sockets, servers, streams, sendfile, subprocesses, SSL.
# They take about as long again as the rest, so they are opt-in.
TRANSPORT_MODULES_ENV = "FASTLOOP_CONFORMANCE_TRANSPORTS"


class Suite:
    def __init__(self, name, min_version=(3, 9), exclude=None, adapters=None,
                 extra=None, transports=False, transport_classes=()):
        self.name = name
        self.min_version = min_version
        # class name -> reason (class not collected)
        self.exclude = dict(exclude or {})
        # base class name -> callable(module, cls) -> dict of overrides,
        # applied to every collected class that is (a subclass of) that class
        self.adapters = dict(adapters or {})
        # callable(module) -> list of (class, method-name filter or None)
        self.extra = extra
        # a module that is all about transports (opt-in, see TRANSPORT_MODULES_ENV)
        self.transports = transports
        # classes of a loop-generic module that are about transports (opt-in)
        self.transport_classes = frozenset(transport_classes)

    def applies(self, version=sys.version_info):
        return tuple(version[:2]) >= self.min_version


# ---------------------------------------------------------------------------
# Adapters


def replace_setup(owner_name):
    """Override setUp of a class whose setUp (defined on *owner_name*) builds a
    stdlib loop into ``self.loop``: run the owner's parent setUp, then bind a
    loop under test exactly as the stdlib did (``self.set_event_loop``)."""

    def adapt(module, cls):
        owner = getattr(module, owner_name)

        def setUp(self):
            super(owner, self).setUp()
            self.loop = loops.new_loop()
            self.set_event_loop(self.loop)

        return {"setUp": setUp}

    return adapt


def runners_new_loop(module, cls):
    """test_runners.BaseTest.new_loop builds a mocked BaseEventLoop and wraps
    shutdown_asyncgens to record that asyncio.run called it; do the same on a
    loop under test, still running the real shutdown_asyncgens."""

    def new_loop(self):
        loop = loops.new_loop()
        loop.shutdown_ag_run = False
        real_shutdown_asyncgens = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real_shutdown_asyncgens()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    return {"new_loop": new_loop}


def gather_run_loop(module, cls):
    """test_tasks.GatherTestsBase._run_loop drains the loop with
    ``while loop._ready: run_briefly(loop)``: the private ready deque is only
    the helper's way to ask "are callbacks pending?", so ask the loop under
    test its own way (loops.pending_callbacks)."""
    from test.test_asyncio import utils as test_utils

    def _run_loop(self, loop):
        while loops.pending_callbacks(loop):
            test_utils.run_briefly(loop)

    return {"_run_loop": _run_loop}


def override_new_loop(module, cls):
    """FunctionalTestCaseMixin-style classes build their loop in new_loop()."""

    def new_loop(self):
        return loops.new_loop()

    return {"new_loop": new_loop}


def bound_mixin(mixin_name, class_name):
    """extra=: a TestCase class ``class_name`` made of the module's
    ``mixin_name`` (which calls self.create_event_loop()) bound to the loop
    under test, like test_events' EventLoopTests."""

    def extra(module):
        from test.test_asyncio import utils as test_utils

        def create_event_loop(self):
            return loops.new_loop()

        cls = type(
            class_name,
            (getattr(module, mixin_name), test_utils.TestCase),
            {"create_event_loop": create_event_loop,
             "__module__": module.__name__,
             "__doc__": "%s on the loop under test." % mixin_name},
        )
        return [(cls, None)]

    return extra


def events_extra(module):
    """test_events: EventLoopTestsMixin bound to the loop under test, plus the
    subprocess tests (SubprocessTestsMixin) on it."""
    from test.test_asyncio import utils as test_utils

    def create_event_loop(self):
        return loops.new_loop()

    out = []
    EventLoopTests = type(
        "EventLoopTests",
        (module.EventLoopTestsMixin, test_utils.TestCase),
        {"create_event_loop": create_event_loop,
         "__module__": module.__name__,
         "__doc__": "EventLoopTestsMixin on the loop under test."},
    )
    out.append((EventLoopTests, None))
    unix_mixin = getattr(module, "UnixEventLoopTestsMixin", None)
    sub_mixin = getattr(module, "SubprocessTestsMixin", None)
    if unix_mixin is not None and sub_mixin is not None:
        SubprocessTests = type(
            "SubprocessTests",
            (unix_mixin, sub_mixin, test_utils.TestCase),
            {"create_event_loop": create_event_loop,
             "__module__": module.__name__,
             "__doc__": "SubprocessTestsMixin on the loop under test."},
        )
        # Only SubprocessTestsMixin's own tests: the EventLoopTestsMixin ones
        # already run in EventLoopTests.
        names = {n for n in vars(sub_mixin) if n.startswith("test")}
        out.append((SubprocessTests, names))
    return out


STDLIB_SELECTOR_LOOP = (
    "runs asyncio.SelectorEventLoop with a specific selector; the same "
    "EventLoopTestsMixin runs on the loop under test as EventLoopTests"
)

STDLIB_SELECTOR_LOOP_SOCK = (
    "runs asyncio.SelectorEventLoop with a specific selector; the same "
    "BaseSockTestsMixin runs on the loop under test as SockTests"
)
STDLIB_SELECTOR_LOOP_SENDFILE = (
    "runs asyncio.SelectorEventLoop with a specific selector; the same "
    "SendfileTestsBase runs on the loop under test as SendfileTests"
)
SAME_SUBPROCESS_TESTS = (
    "the SubprocessMixin tests again with another stdlib child watcher "
    "(the loop under test runs them once, in SubprocessThreadedWatcherTests)"
)

SUITES = [
    Suite(
        "test_events",
        exclude={
            "SelectEventLoopTests": STDLIB_SELECTOR_LOOP,
            "PollEventLoopTests": STDLIB_SELECTOR_LOOP,
            "EPollEventLoopTests": STDLIB_SELECTOR_LOOP,
            "KqueueEventLoopTests": STDLIB_SELECTOR_LOOP,
            "ProactorEventLoopTests": STDLIB_SELECTOR_LOOP,
        },
        extra=events_extra,
    ),
    Suite(
        "test_base_events",
        exclude={
            "BaseEventTests": "asyncio.base_events helper functions (_ipaddr_info ...), no loop",
            "TestSelectorUtils": "asyncio.base_events._set_nodelay helper, no loop",
            "BaseLoopSockSendfileTests": (
                "drives the sendfile fallback of a stdlib BaseSelectorEventLoop "
                "subclass; sendfile is transport work (issue 3/4)"
            ),
        },
        adapters={
            "BaseEventLoopTests": replace_setup("BaseEventLoopTests"),
            "BaseEventLoopWithSelectorTests": replace_setup("BaseEventLoopWithSelectorTests"),
        },
    ),
    Suite("test_tasks", adapters={"GatherTestsBase": gather_run_loop}),
    Suite("test_futures"),
    Suite("test_futures2"),
    Suite("test_locks"),
    Suite("test_queues"),
    Suite("test_waitfor"),
    Suite("test_pep492", adapters={"BaseTest": replace_setup("BaseTest")}),
    Suite("test_context"),
    Suite("test_runners", adapters={"BaseTest": runners_new_loop}),
    Suite("test_threads"),
    Suite("test_timeouts", min_version=(3, 11)),
    Suite("test_taskgroups", min_version=(3, 11)),
    Suite("test_eager_task_factory", min_version=(3, 12)),
    Suite("test_staggered", min_version=(3, 13)),
    Suite(
        "test_unix_events",
        exclude={
            "SelectorEventLoopSignalTests": (
                "mocks asyncio.unix_events.signal to test the stdlib "
                "_UnixSelectorEventLoop's signal handler bookkeeping"),
            "UnixReadPipeTransportTests": (
                "asyncio's private _UnixReadPipeTransport class on a mocked os"),
            "UnixWritePipeTransportTests": (
                "asyncio's private _UnixWritePipeTransport class on a mocked os"),
            "AbstractChildWatcherTests": "asyncio's child watcher classes",
            "BaseChildWatcherTests": "asyncio's child watcher classes",
            "SafeChildWatcherTests": "asyncio's child watcher classes (mocked os.waitpid)",
            "FastChildWatcherTests": "asyncio's child watcher classes (mocked os.waitpid)",
        },
        adapters={"SelectorEventLoopUnixSocketTests":
                  replace_setup("SelectorEventLoopUnixSocketTests")},
        transport_classes={"SelectorEventLoopUnixSocketTests",
                           "SelectorEventLoopUnixSockSendfileTests"},
    ),
    # -- transports: sockets, servers, streams, sendfile, subprocesses, SSL
    Suite("test_sock_lowlevel", transports=True,
          exclude={n: STDLIB_SELECTOR_LOOP_SOCK for n in (
              "SelectEventLoopTests", "PollEventLoopTests", "EPollEventLoopTests",
              "KqueueEventLoopTests", "ProactorEventLoopTests")},
          extra=bound_mixin("BaseSockTestsMixin", "SockTests")),
    Suite("test_sendfile", transports=True,
          exclude={n: STDLIB_SELECTOR_LOOP_SENDFILE for n in (
              "SelectEventLoopTests", "PollEventLoopTests", "EPollEventLoopTests",
              "KqueueEventLoopTests", "ProactorEventLoopTests")},
          extra=bound_mixin("SendfileTestsBase", "SendfileTests")),
    Suite("test_streams", transports=True),
    Suite("test_server", transports=True,
          exclude={"ProactorStartServerTests": "Windows proactor loop"},
          adapters={"BaseStartServer": override_new_loop}),
    Suite("test_buffered_proto", transports=True,
          exclude={"BufferedProtocolProactorTests": "Windows proactor loop"},
          adapters={"BaseTestBufferedProtocol": override_new_loop}),
    Suite("test_sslproto", transports=True,
          exclude={"ProactorStartTLSTests": "Windows proactor loop"},
          adapters={"BaseStartTLS": override_new_loop}),
    Suite("test_ssl", min_version=(3, 11), transports=True),
    Suite(
        "test_subprocess", transports=True,
        exclude={
            "SubprocessTransportTests": (
                "asyncio's BaseSubprocessTransport class on the mock TestLoop"),
            "SubprocessSafeWatcherTests": SAME_SUBPROCESS_TESTS,
            "SubprocessFastWatcherTests": SAME_SUBPROCESS_TESTS,
            "SubprocessPidfdWatcherTests": SAME_SUBPROCESS_TESTS,
            "SubprocessMultiLoopWatcherTests": SAME_SUBPROCESS_TESTS,
            "MultiLoopChildWatcherTests": "asyncio's MultiLoopChildWatcher class",
            "GenericWatcherTests": (
                "asyncio's child watcher protocol (a mock watcher must be "
                "called); fastloop watches its children itself"),
            "SubprocessProactorTests": "Windows proactor loop",
        },
    ),
]
