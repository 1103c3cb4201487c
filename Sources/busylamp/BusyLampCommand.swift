import ArgumentParser
import Foundation

/// `busylamp`: the operator's command line (INTERFACE.md). No business logic lives here: the
/// commands read options, open the store and wire the services together.
@main
struct BusyLampCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "busylamp",
        abstract: "SIP presence and Busy Lamp Field server.",
        subcommands: [ServeCommand.self, DemoCommand.self, ImportCommand.self, WhyCommand.self]
    )

    /// INTERFACE.md: bad options or a bad file exit with code 2 and a message naming the
    /// problem, nothing started. ArgumentParser's own usage code (64) is mapped onto it.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as OperatorError {
            FileHandle.standardError.write(Data("busylamp: \(error.message)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(code == .validationFailure || code.rawValue == 64 ? 2 : code.rawValue)
        }
    }
}

/// A problem the operator must fix (bad option, bad file): exit code 2. Runtime failures
/// after start use 1.
struct OperatorError: Error {
    var message: String
    var exitCode: Int32 = 2
}
