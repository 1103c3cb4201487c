extension Directory {
    /// The line a phone of `accountID` reaches by dialing `dialed`: an extension of that account
    /// first, then a number anywhere on the platform (``line(dialedNumber:)``).
    ///
    /// Extensions are per account, so another account's extension is not found here; its
    /// number is. The same order as a subscription's target (PRODUCT.md rule 6).
    public func line(dialed: String, accountID: String) -> Line? {
        if let line = line(accountID: accountID, extensionNumber: dialed) { return line }
        return line(dialedNumber: dialed)
    }

    /// The line whose number is `dialed`, written as stored (`6495550201`) or in E.164 with its
    /// plus (`+6495550201`, as some phones and carriers write numbers).
    func line(dialedNumber dialed: String) -> Line? {
        if let line = line(number: dialed) { return line }
        if dialed.hasPrefix("+") { return line(number: String(dialed.dropFirst())) }
        return nil
    }
}
