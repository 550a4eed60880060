"""CPython's own socket tests (Lib/test/test_socket.py): the AF_INET TCP and UDP classes, and
a guard set of classes on the kernel's sockets (AF_UNIX, AF_INET6, UDP-Lite).

Run by service/tests/cpython.rs under `joyride run` (the tests talk to themselves over
127.0.0.1, which joyrided serves on its loopback path); also runs as is on the kernel:

    python3 service/tests/cpython-test_socket.py [EXCLUDE_FILE] [-k SUBSTRING]

Each test of CLASSES and KERNEL_CLASSES runs unless the exclusion file names it ("Class.test_name" or "Class",
then the reason after '#'). An excluded name that matches nothing is reported (stale entry).
Every test gets a watchdog (PER_TEST_S): a hang dumps every thread's stack and exits 3.
The last line is the summary the Rust test parses:

    cpython test_socket: ran=N passed=N failures=N errors=N skipped=N excluded=N
        inet_passed=N kernel_passed=N seconds=S

Exit status: 0 when every test that ran passed, 1 otherwise, 77 without the `test` package.
"""

import faulthandler
import os
import sys
import time
import unittest

# The AF_INET TCP/UDP classes (those on other families or protocols are the kernel's).
CLASSES = [
    "GeneralModuleTests",
    "BasicTCPTest",
    "BasicTCPTest2",
    "BasicUDPTest",
    "TCPCloserTest",
    "TCPTimeoutTest",
    "UDPTimeoutTest",
    "NonBlockingTCPTests",
    "FileObjectClassTestCase",
    "UnbufferedFileObjectClassTestCase",
    "LineBufferedFileObjectClassTestCase",
    "SmallBufferedFileObjectClassTestCase",
    "UnicodeReadFileObjectClassTestCase",
    "UnicodeWriteFileObjectClassTestCase",
    "UnicodeReadWriteFileObjectClassTestCase",
    "NetworkConnectionNoServer",
    "NetworkConnectionAttributesTest",
    "NetworkConnectionBehaviourTest",
    "BufferIOTest",
    "ContextManagersTest",
    "InheritanceTest",
    "NonblockConstantTest",
    "CreateServerTest",
    "CreateServerFunctionalTest",
    "SendfileUsingSendTest",
    "SendfileUsingSendfileTest",
    "SendmsgTCPTest",
    "SendmsgUDPTest",
    "RecvmsgTCPTest",
    "RecvmsgIntoTCPTest",
    "RecvmsgUDPTest",
    "RecvmsgIntoUDPTest",
    "InterruptedRecvTimeoutTest",
    "InterruptedSendTimeoutTest",
    "TestExceptions",
]

# Other families and protocols: the kernel's sockets, which must keep working under the shim
# (they skip where the kernel lacks IPv6 or UDP-Lite).
KERNEL_CLASSES = [
    "BasicSocketPairTest",
    "TestUnixDomain",
    "TestLinuxAbstractNamespace",
    "SendmsgUnixStreamTest",
    "RecvmsgUnixStreamTest",
    "RecvmsgIntoUnixStreamTest",
    "RecvmsgSCMRightsStreamTest",
    "RecvmsgIntoSCMRightsStreamTest",
    "SendRecvFdsTests",
    "CmsgMacroTests",
    "BasicUDPLITETest",
    "UDPLITETimeoutTest",
    "SendmsgUDPLITETest",
    "RecvmsgUDPLITETest",
    "RecvmsgIntoUDPLITETest",
    "SendmsgUDP6Test",
    "RecvmsgUDP6Test",
    "RecvmsgIntoUDP6Test",
    "RecvmsgRFC3542AncillaryUDP6Test",
    "RecvmsgIntoRFC3542AncillaryUDP6Test",
]

PER_TEST_S = 60


def read_exclusions(path):
    out = {}
    if not path:
        return out
    with open(path) as f:
        for line in f:
            name, _, reason = line.partition("#")
            name = name.strip()
            if name:
                out[name] = reason.strip()
    return out


class Watchdog(unittest.TextTestResult):
    """Arms a faulthandler watchdog per test and notes the slow ones."""

    slow = []

    def startTest(self, test):
        faulthandler.dump_traceback_later(PER_TEST_S, exit=True)
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        # (Python 3.12 can stop a skipped test it never started.)
        dt = time.monotonic() - getattr(self, "_t0", time.monotonic())
        if dt > 2:
            Watchdog.slow.append((dt, test.id()))
        super().stopTest(test)


def main():
    args = sys.argv[1:]
    substr = None
    if "-k" in args:
        i = args.index("-k")
        substr = args[i + 1]
        del args[i : i + 2]
    exclude = read_exclusions(args[0] if args else None)
    try:
        from test import support
        from test import test_socket
    except ImportError as e:
        print(f"SKIP: this python has no CPython test package ({e})")
        return 77
    # Like `python -m test` without -u: no test may use optional resources (the Internet).
    support.use_resources = []
    faulthandler.enable(all_threads=True)

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    used = set()
    excluded = 0
    added = []  # (class, test id): the suite forgets its tests as it runs them
    for cls_name in CLASSES + KERNEL_CLASSES:
        cls = getattr(test_socket, cls_name, None)
        if cls is None:
            print(f"note: test_socket has no {cls_name} in this Python version")
            continue
        for t in loader.loadTestsFromTestCase(cls):
            short = f"{cls_name}.{t._testMethodName}"
            if substr is not None and substr not in short:
                continue
            hit = short if short in exclude else cls_name if cls_name in exclude else None
            if hit is not None:
                used.add(hit)
                excluded += 1
                print(f"excluded {short}: {exclude[hit]}")
                continue
            suite.addTest(t)
            added.append((cls_name, t.id()))
    for name in sorted(set(exclude) - used):
        if substr is None:
            print(f"note: exclusion {name!r} matches no test in this Python version")

    t0 = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Watchdog)
    result = runner.run(suite)
    secs = time.monotonic() - t0
    for dt, name in sorted(Watchdog.slow, reverse=True)[:10]:
        print(f"slow: {name} {dt:.1f} s")
    ran = result.testsRun
    skipped = len(result.skipped)
    not_passed = [t for t, _ in result.failures + result.errors + result.skipped]
    not_passed += [t for t, _ in result.expectedFailures] + result.unexpectedSuccesses
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = ran - skipped - bad - len(result.expectedFailures)
    not_passed = {t.id() for t in not_passed}

    def passed_in(classes):
        return sum(1 for c, i in added if c in classes and i not in not_passed)

    print(
        f"cpython test_socket: ran={ran} passed={passed} failures={len(result.failures)} "
        f"errors={len(result.errors)} skipped={skipped} excluded={excluded} "
        f"inet_passed={passed_in(CLASSES)} kernel_passed={passed_in(KERNEL_CLASSES)} "
        f"seconds={secs:.1f}",
        flush=True,
    )
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    code = main()
    sys.stdout.flush()
    os._exit(code)
