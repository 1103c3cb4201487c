import BenchmarkMessages
import SIPCore

// A cross-check of the package-benchmark figures without its malloc interposer in the process
// (the interposer adds work to every allocation): times `count` parses and serializations of each
// message with ContinuousClock, `rounds` times, and prints the median round as messages/s.
//
//   SIPParserThroughput [count] [rounds]

let arguments = CommandLine.arguments.dropFirst()
let count = arguments.first.flatMap { Int($0) } ?? 200_000
let rounds = arguments.dropFirst().first.flatMap { Int($0) } ?? 5

@inline(never)
func consume<T>(_ value: T) { withExtendedLifetime(value) {} }

func measure(_ label: String, _ body: () -> Void) {
    var rates: [Double] = []
    body()  // warm up
    for _ in 0..<rounds {
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<count { body() }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        rates.append(Double(count) / seconds)
    }
    rates.sort()
    let median = rates[rates.count / 2]
    let line = "\(label)\t\(Int(median.rounded()))\t\(Int(rates.first!.rounded()))\t\(Int(rates.last!.rounded()))"
    print(line)
}

print("benchmark\tmedian msg/s\tmin\tmax")
let parser = SIPParser()
for (name, bytes) in BenchmarkMessages.all {
    measure("\(name) parse datagram") { consume(try? parser.parse(bytes, framing: .datagram)) }
    measure("\(name) parse stream") { consume(try? parser.parse(bytes, framing: .stream)) }
    guard let message = try? parser.parse(bytes) else { fatalError("\(name) does not parse") }
    measure("\(name) serialize") { consume(message.serializedBytes) }
}
