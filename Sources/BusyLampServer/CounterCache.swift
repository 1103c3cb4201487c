import Metrics

/// The server's counters, each made once per label and dimension values.
///
/// Making a swift-metrics `Counter` asks the bootstrapped backend's factory (a lock and a
/// lookup), which the per-request path need not pay: it increments the cached one instead.
/// Confined to the server's event loop, like the rest of its state. Dimension values must come
/// from bounded sets (methods, reasons), never from the network, so the cache stays small.
final class CounterCache {
    private var counters: [String: Counter] = [:]

    func increment(_ label: String, _ dimensions: [(String, String)] = []) {
        var key = label
        for (name, value) in dimensions {
            key += "\u{1}" + name + "=" + value
        }
        if let counter = counters[key] {
            counter.increment()
            return
        }
        let counter = Counter(label: label, dimensions: dimensions)
        counters[key] = counter
        counter.increment()
    }
}
