import BusyLampCore
import Foundation
import NIOCore
import SIPAuth
import SIPCore
import SIPTransactions
import SIPTransportNIO

/// REGISTER (RFC 3261 §10.3), digest authentication of every request a line sends, and the
/// registration half of the line state (a line is registered while it has a live binding:
/// PIDF open or closed).
extension SIPShard {
    /// The line that signed `request`, or `nil` after answering it with a challenge (401) or
    /// a 400 for unreadable credentials.
    /// Who asks for credentials: a registrar or notifier as the user agent server (401 with
    /// WWW-Authenticate, answered in Authorization), or the B2BUA as the first hop of a call
    /// (RFC 3261 §22.3: 407 with Proxy-Authenticate, answered in Proxy-Authorization, as phones
    /// expect from the server their INVITEs go to).
    enum ChallengeRole {
        case userAgentServer
        case proxy

        var credentialsHeader: SIPHeaderName { self == .proxy ? .proxyAuthorization : .authorization }
        var challengeHeader: SIPHeaderName { self == .proxy ? .proxyAuthenticate : .wwwAuthenticate }
        var challengeStatus: Int { self == .proxy ? 407 : 401 }
    }

    func authenticatedLine(
        _ request: SIPRequest,
        key: TransactionKey,
        as role: ChallengeRole = .userAgentServer
    ) -> Line? {
        let directory = self.directory
        let now = Date()
        let address = inboundFlows[key]?.remoteHost ?? "?"
        // The user the credentials claim: what failures are counted under (issue 9).
        let claimedUser = request.headers[role.credentialsHeader].flatMap { try? DigestCredentials(parsing: $0) }?
            .username
        if let claimedUser,
            case .lockedOut(let scope, _) = failedAuthentications.verdict(address: address, user: claimedUser, now: now)
        {
            // No verification, no new challenge: a guesser learns nothing and costs one lookup.
            metrics.authLockedOutRequests.increment(scope.rawValue)
            countRefusal(request.method.rawValue, reason: "locked_out")
            switch failedAuthentications.settings.lockoutAnswer {
            case .forbidden: respond(to: request, key: key, status: 403, reason: "Too Many Failed Authentications")
            case .silence: execute(transactions.discardServerTransaction(key), flow: nil)
            }
            return nil
        }
        let outcome = authenticator.verify(
            request: request,
            headerName: role.credentialsHeader,
            ha1Lookup: { username, algorithm in directory.line(number: username)?.credentials[algorithm] },
            now: now,
            servesHost: { [self] in isLocal(host: $0) }
        )
        guard case .authenticated(let username) = outcome, let line = directory.line(number: username) else {
            if outcome == .wrongCredentials, let claimedUser,
                let lockout = failedAuthentications.recordFailure(address: address, user: claimedUser, now: now)
            {
                metrics.authLockouts.increment(lockout.scope.rawValue)
                logger.warning(
                    "Too many failed authentications: locked out",
                    metadata: [
                        LogKey.peer: "\(address)", LogKey.line: "\(lockout.user)",
                        LogKey.scope: "\(lockout.scope)", LogKey.until: "\(lockout.until)",
                    ]
                )
            }
            if outcome == .wrongCredentials || outcome == .replayed {
                // The operator's view: bad credentials are why many lamps stay orange.
                let code = outcome == .wrongCredentials ? "bad_credentials" : "replayed_nonce"
                metrics.authFailures.increment(code)
                recordRefusal(
                    request,
                    from: inboundFlows[key].map(SIPPeer.init) ?? SIPPeer(transport: .udp, host: "?", port: 0),
                    line: claimedLine(of: request, headerName: role.credentialsHeader),
                    status: role.challengeStatus,
                    reason: "Bad Credentials",
                    code: code
                )
            }
            challenge(request, key: key, outcome: outcome, as: role)
            return nil
        }
        failedAuthentications.recordSuccess(address: address, user: username)
        return line
    }

    func handleRegister(_ request: SIPRequest, key: TransactionKey, flow: SIPFlow) {
        guard let line = authenticatedLine(request, key: key) else { return }
        // RFC 3261 §10.3 step 5: the authenticated line may change only its own bindings. The To
        // user is its number, or its extension (phones configured with the short form).
        guard let toURI = request.to?.uri, isLocal(toURI),
            toURI.user == line.number || toURI.user == line.extensionNumber
        else {
            countRefusal("REGISTER", reason: "foreign_aor")
            recordRefusal(
                request,
                from: SIPPeer(flow),
                line: line,
                status: 403,
                reason: "Not Your Address Of Record",
                code: "foreign_aor"
            )
            return respond(to: request, key: key, status: 403, reason: "Not Your Address Of Record")
        }
        let aor = line.number
        let source = SIPPeer(flow)
        let registrar = self.registrar
        let store = registrationStore
        storeThread.runIfActive(eventLoop: eventLoop) { () throws -> (Registrar.Decision, Date) in
            let now = Date()
            let decision = registrar.decide(
                register: request,
                aor: aor,
                existing: try store.bindings(aor: aor),
                source: source,
                now: now
            )
            if case .apply(let upserts, let removals, _) = decision, !upserts.isEmpty || !removals.isEmpty {
                try store.apply(aor: aor, upserts: upserts, removals: removals)
            }
            return (decision, now)
        }.whenComplete { [self] result in
            switch result {
            case .success((.reject(let status, let reason, let headers), _)):
                countRefusal("REGISTER", reason: String(status))
                respond(to: request, key: key, status: status, reason: reason, headers: headers)
            case .success((.apply(_, _, let bindings), let now)):
                var response = registrar.okResponse(to: request, bindings: bindings, now: now, toTag: Self.makeTag())
                response.headers.add(.server, configuration.serverName)
                execute(transactions.sendResponse(response, for: key), flow: flow)
                logger.debug(
                    "Registered",
                    metadata: [LogKey.line: "\(aor)", LogKey.peer: "\(flow)", LogKey.bindings: "\(bindings.count)"]
                )
                bindingsChanged(aor: aor, to: bindings, now: now)
            case .failure(let error):
                logger.error("Registration store failed", metadata: [LogKey.line: "\(aor)", LogKey.error: "\(error)"])
                respond(to: request, key: key, status: 500, reason: "Registration Not Stored")
            }
        }
    }

    /// 401 with our challenges, or 400 when the credentials cannot be read.
    func challenge(
        _ request: SIPRequest,
        key: TransactionKey,
        outcome: DigestOutcome,
        as role: ChallengeRole = .userAgentServer
    ) {
        let reason: String
        switch outcome {
        case .malformed(let error):
            countRefusal(request.method.rawValue, reason: "malformed_credentials")
            return respond(
                to: request,
                key: key,
                status: 400,
                reason: "Malformed \(role.credentialsHeader): \(error.code.rawValue)"
            )
        case .authenticated: reason = "unknown_line"
        case .stale: reason = "stale_nonce"
        case .wrongCredentials: reason = "wrong_credentials"
        case .replayed: reason = "replayed_nonce"
        case .realmMismatch: reason = "other_realm"
        case .invalidNonce: reason = "invalid_nonce"
        case .missingCredentials: reason = "challenge"
        }
        countRefusal(request.method.rawValue, reason: reason)
        let response = challengeResponse(to: request, outcome: outcome, as: role)
        execute(transactions.sendResponse(response, for: key), flow: inboundFlows[key])
    }

    /// The 401 (or 407) with a fresh nonce for each of our algorithms.
    func challengeResponse(
        to request: SIPRequest,
        outcome: DigestOutcome,
        as role: ChallengeRole = .userAgentServer
    ) -> SIPResponse {
        // RFC 2617 §3.2.1 and PRODUCT.md rule 5: a stale nonce gets a fresh challenge with
        // stale=true, never a bare 401.
        let headers = authenticator.challengeHeaders(stale: outcome == .stale, now: Date()).map {
            SIPHeaders.Field(name: role.challengeHeader, value: $0)
        }
        return makeResponse(to: request, status: role.challengeStatus, headers: headers)
    }

    // MARK: Registration state

    /// The AOR's live bindings are now `bindings`: its registered state (and the addresses
    /// `same_network_only` accepts) follow, and its watchers hear of a change.
    /// On the line owner only; the other shards get the bindings with the line change.
    func bindingsChanged(aor: String, to bindings: [Binding], now: Date) {
        let live = bindings.filter { $0.expiresAt > now }
        liveBindings[aor] = live.isEmpty ? nil : live
        changeLine(aor, now: now, bindingsChanged: true) { $0.setRegistered(!live.isEmpty) }
    }

    /// The line's bindings that have not expired: where its calls ring.
    func currentBindings(number: String) -> [Binding] {
        let now = Date()
        return (liveBindings[number] ?? []).filter { $0.expiresAt > now }
    }

    /// The source hosts of the line's live bindings.
    func registeredSourceHosts(number: String) -> [String] {
        currentBindings(number: number).map(\.source.host)
    }

    /// Lines whose last binding just expired become unregistered (called every second, with
    /// the subscription sweep, so that PIDF turns `closed` on time).
    /// A replica only drops them: the line owner's change, with the new state, follows.
    func expireLiveBindings(now: Date) {
        for (aor, bindings) in liveBindings where bindings.contains(where: { $0.expiresAt <= now }) {
            if ownsLines {
                bindingsChanged(aor: aor, to: bindings, now: now)
            } else {
                let live = bindings.filter { $0.expiresAt > now }
                liveBindings[aor] = live.isEmpty ? nil : live
            }
        }
    }

    /// Removes expired bindings from the store (the in-memory view is `expireLiveBindings`).
    func sweepExpiredBindings() {
        let now = Date()
        let store = registrationStore
        storeThread.runIfActive(eventLoop: eventLoop) { try store.removeExpired(now: now) }
            .whenComplete { [logger] result in
                switch result {
                case .success(let removed) where !removed.isEmpty:
                    logger.debug("Expired bindings removed", metadata: [LogKey.bindings: "\(removed.count)"])
                case .success: break
                case .failure(let error):
                    logger.error("Binding sweep failed", metadata: [LogKey.error: "\(error)"])
                }
            }
    }
}
