import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started with `posix_spawn`, with a clean signal state.
///
/// Foundation's `Process` starts children from whatever thread calls it, and a child inherits
/// that thread's signal mask: from a Dispatch or test-runner thread that blocks SIGTERM, a
/// `busylamp serve` would never see the SIGTERM the tests send. Here the child gets an empty
/// mask and default handlers, as it would from a shell.
public final class ChildProcess {
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        public var description: String {
            switch self {
            case .exited(let code): "exit status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    public let pid: pid_t
    public private(set) var termination: Termination?

    /// Starts `executable` with `arguments`; standard input is /dev/null, output and error are
    /// appended to the given files; the environment is ours.
    public init(executable: URL, arguments: [String], standardOutput: URL, standardError: URL) throws {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, standardOutput.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&fileActions, 2, standardError.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let result = argv.withUnsafeBufferPointer { argvPointer in
            posix_spawn(&child, executable.path, &fileActions, &attributes, argvPointer.baseAddress!, environ)
        }
        guard result == 0 else {
            throw TestProcessFailure("posix_spawn \(executable.path): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = waitUntilExit(blocking: true)
        }
    }

    /// Reaps the child if it has ended; true while it runs.
    public var isRunning: Bool { waitUntilExit(blocking: false) == nil }

    public func signal(_ signal: Int32) { if termination == nil { kill(pid, signal) } }

    @discardableResult
    private func waitUntilExit(blocking: Bool) -> Termination? {
        if let termination { return termination }
        var status: Int32 = 0
        let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
        guard result == pid else { return nil }
        // The <sys/wait.h> macros, which Swift does not import.
        let low = status & 0x7F
        termination = low == 0 ? .exited((status >> 8) & 0xFF) : .signaled(low)
        return termination
    }

    /// Waits (sleeping, not blocking a thread) until the child ends or `timeout` passes.
    public func waitForExit(within timeout: Duration) async throws -> Termination? {
        _ = try await eventually(within: timeout) { !isRunning }
        return termination
    }
}
