extension Dictionary {
    /// Gives back the storage a past peak left behind: a Swift dictionary never shrinks as it
    /// empties, so a table that once held a burst of transactions kept their buckets for the
    /// life of the process (issue 10's heap profile: 50 MB of empty transaction buckets after a
    /// 20 s SUBSCRIBE burst). Rebuilt only when at most a quarter of it is in use and it is big
    /// enough to matter, so calling it once a second costs nothing in the steady state.
    public mutating func releaseUnusedCapacity(keepingAtLeast minimumCapacity: Int = 1024) {
        guard capacity > minimumCapacity, count * 4 <= capacity else { return }
        var smaller = Dictionary(minimumCapacity: Swift.max(count * 2, minimumCapacity / 2))
        for (key, value) in self { smaller[key] = value }
        self = smaller
    }
}
