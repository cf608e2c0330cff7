// The app's state: sign-in through the FFI (rules of behaviour, device registration, hot list key pinning), the Scanner (released on sign-out), sessions, the camera feed, scanner events as published state, alert decisions.
import AVFoundation
import Platewatch
import PlatewatchFFI
import SwiftUI
import UIKit

struct RulesPrompt: Equatable {
    let version: Int64
    let text: String
}

struct AppError: LocalizedError {
    let errorDescription: String?
    init(_ text: String) { errorDescription = text }
}

@MainActor
final class AppModel: ObservableObject {
    enum Screen { case login, session, camera, settings }

    @Published var screen: Screen
    @Published private(set) var busy = false
    @Published private(set) var user: String?
    /// The server's rules of behaviour to acknowledge at sign-in: shown before signing in when
    /// this device can read them with its token, or returned by the first sign-in attempt.
    @Published private(set) var rules: RulesPrompt?
    /// The server's reason codes, fetched after sign-in (empty: the settings' list is offered).
    @Published private(set) var reasonCodes: [String] = []
    @Published private(set) var session: SessionInfo?
    /// The newest processed frame: plate boxes and per-frame reads for the overlay.
    @Published private(set) var frame: FrameResult?
    /// Consensus reads of the last vehicle passes, newest first (on screen only, never logged).
    @Published private(set) var reads: [PlateReadEvent] = []
    /// Alerts waiting for a decision, oldest first (the first is shown).
    @Published private(set) var alerts: [AlertEvent] = []
    @Published private(set) var uploads: UploadStatus?
    @Published private(set) var hotlists: [HotlistInfo] = []
    @Published private(set) var stats: FrameStats?
    @Published private(set) var syncing = false
    @Published var message: String?
    @Published private(set) var settings: AppSettings
    @Published private(set) var feed: CameraFeed?

    private var scanner: Scanner?
    private var registration: Registration?
    private var pinnedKey: String?
    private var tasks: [Task<Void, Never>] = []
    private var orientationObserver: NSObjectProtocol?
    let location = LocationFeed()
    private let signal = AlertSignal()

    init() {
        let s = AppSettings.load()
        settings = s
        screen = s.problem == nil ? .login : .settings
        loadRules()
    }

    /// The reason codes offered at session start: the server's once fetched, else the settings'.
    var offeredReasonCodes: [String] { reasonCodes.isEmpty ? settings.reasonCodes : reasonCodes }

    // MARK: sign-in

    /// Signs in through the FFI, which registers the device (or keeps its registration while the
    /// server accepts it). When the server has rules of behaviour that were not acknowledged, the
    /// answer is the rules (shown by the login view); the user ticks the acknowledgement and the
    /// next attempt sends their version. The device is not handed to another user or server
    /// while the previous one's encounters wait to upload.
    func signIn(user: String, password: String, acknowledged: Bool) {
        let server = settings.serverUrl
        let name = user.trimmingCharacters(in: .whitespaces)
        let ack = acknowledged ? rules?.version : nil
        run {
            let old = AppSettings.registration()
            if let old, old.serverUrl != server || old.user != name { try await self.ensureNothingPending(old) }
            let existing = (old?.serverUrl == server && old?.user == name) ? old?.device : nil
            let request = SignInRequest(
                serverUrl: server, user: name, password: password, acknowledgeRulesVersion: ack,
                deviceName: "Platewatch \(UIDevice.current.model)", existingDevice: existing
            )
            // Qualified: this method's own name would shadow the FFI function.
            switch try await PlatewatchFFI.signIn(request: request) {
            case let .rulesRequired(rules):
                self.rules = RulesPrompt(version: rules.version, text: rules.text)
            case let .signedIn(device, _, _, _):
                let reg = Registration(serverUrl: server, user: name, device: device)
                try AppSettings.save(reg)
                let key = try await self.hotlistKey(server: server, deviceToken: device.deviceToken)
                try await self.openScanner(reg, hotlistKey: key)
                self.user = name
                self.rules = nil
                self.screen = .session
            }
        }
    }

    func signOut() {
        guard session == nil else { return }
        run {
            await self.closeScanner()
            self.resetToLogin()
        }
    }

    /// Shows the server's current rules on the login view when this device has a token to read
    /// them with; otherwise the first sign-in attempt returns them.
    private func loadRules() {
        guard let reg = AppSettings.registration(), let device = reg.device,
              reg.serverUrl == settings.serverUrl else { return }
        Task {
            guard let current = try? await fetchRules(serverUrl: reg.serverUrl, deviceToken: device.deviceToken),
                  screen == .login, rules == nil else { return }
            rules = RulesPrompt(version: current.version, text: current.text)
        }
    }

    /// The hot list key to pin: the operator's (settings); else the key pinned on first use for
    /// this server; else, only when the settings say to trust the server's key, the key the
    /// server presents now, pinned from then on. Nil: no hot list is accepted (sync says so).
    private func hotlistKey(server: String, deviceToken: String) async throws -> String? {
        let configured = settings.hotlistKey.trimmingCharacters(in: .whitespacesAndNewlines)
        if !configured.isEmpty { return configured }
        if let pinned = AppSettings.pinnedServerKey(server: server) { return pinned }
        guard settings.trustServerKey else { return nil }
        let key = try await fetchHotlistKey(serverUrl: server, deviceToken: deviceToken)
        AppSettings.pinServerKey(server: server, key: key.publicKey)
        message = "Hot list key \(key.keyId) pinned (trusted on first use)"
        return key.publicKey
    }

    private func ensureNothingPending(_ previous: Registration) async throws {
        let config = try scannerConfig(previous, hotlistKey: nil)
        let canUpload = previous.device != nil
        // The scanner lives and is released on a background thread.
        let pending = try await Task.detached { () -> Int64 in
            let s = try Scanner(config: config)
            if try s.pendingUploads().pending > 0, canUpload { _ = try? await s.syncNow() }
            return try s.pendingUploads().pending
        }.value
        if pending > 0 {
            throw AppError(
                "\(pending) encounter(s) recorded for \(previous.user) on \(previous.serverUrl) have not been " +
                    "uploaded yet; sign in as \(previous.user) and upload them first"
            )
        }
    }

    // MARK: the scanner

    private func scannerConfig(_ reg: Registration, hotlistKey: String?) throws -> ScannerConfig {
        guard let detector = Bundle.main.path(forResource: "plate_detector", ofType: "onnx"),
              let reader = Bundle.main.path(forResource: "plate_reader", ofType: "onnx"),
              let refiner = Bundle.main.path(forResource: "plate_refiner", ofType: "onnx")
        else { throw AppError("The models are missing from the app bundle") }
        // Application Support/Platewatch, excluded from backups: it holds evidence.
        var dir = try FileManager.default
            .url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("Platewatch", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try dir.setResourceValues(values)
        return ScannerConfig(
            detector: .file(path: detector),
            reader: .file(path: reader),
            refiner: .file(path: refiner),
            storePath: dir.appendingPathComponent("device.db").path,
            deviceId: AppSettings.deviceId(),
            cameraId: "rear",
            reasonCodes: settings.reasonCodes,
            serverUrl: reg.serverUrl,
            device: reg.device,
            hotlistKey: hotlistKey,
            imageKey: try Keychain.imageKey(),
            detectorThreshold: settings.detectorThreshold,
            minReadConfidence: settings.minReadConfidence,
            alertThreshold: settings.alertThreshold
        )
    }

    /// Opens the scanner, then fetches the server's reason codes and syncs (uploads, hot lists) once.
    private func openScanner(_ reg: Registration, hotlistKey: String?) async throws {
        await closeScanner()
        let config = try scannerConfig(reg, hotlistKey: hotlistKey)
        // Model loading takes a few hundred milliseconds: off the main thread.
        let s = try await Task.detached { try Scanner(config: config) }.value
        scanner = s
        registration = reg
        pinnedKey = hotlistKey
        tasks = [listen(s), pollStatus(s), periodicSync(s), firstSync(s)]
    }

    private func firstSync(_ s: Scanner) -> Task<Void, Never> {
        Task { [weak self] in
            // Without them the settings' list is offered; the server checks the code anyway.
            if let codes = try? await s.reasonCodes() { self?.reasonCodes = codes }
            _ = try? await s.syncNow()
        }
    }

    /// Stops the camera and the tasks, then drops the scanner: the Rust side stops its threads
    /// and closes the store when the last reference goes.
    private func closeScanner() async {
        await stopCamera()
        tasks.forEach { $0.cancel() }
        tasks = []
        scanner = nil
    }

    private func listen(_ s: Scanner) -> Task<Void, Never> {
        Task { [weak self] in
            for await event in s.events() {
                guard let self else { return }
                self.handle(event)
            }
        }
    }

    private func handle(_ event: ScanEvent) {
        switch event {
        case let .frame(f):
            frame = f
        case let .read(r):
            reads = Array(([r] + reads).prefix(5))
        case let .alert(a):
            alerts.append(a)
            signal.alert(priority: Int(a.matches.map(\.priority).max() ?? 0))
        case let .sync(status):
            syncing = status.phase == .started
            uploads = status.pending
            if status.phase != .started { hotlists = status.report.lists }
            if let refused = AppModel.refusals(status.report) { message = refused }
            if let renewed = status.report.renewedDevice {
                // The sync renewed the device token: keep the new one (the old one lapses).
                AppSettings.saveRenewed(renewed)
                if let reg = registration {
                    registration = Registration(serverUrl: reg.serverUrl, user: reg.user, device: renewed)
                }
            }
        case let .error(e):
            if e.kind == .unauthorized { AppSettings.forgetDeviceToken() }
            message = e.message
        }
    }

    /// Pending uploads, hot list ages and frame counters for the status strip.
    private func pollStatus(_ s: Scanner) -> Task<Void, Never> {
        Task { [weak self] in
            while !Task.isCancelled {
                let status = await Task.detached { () -> (UploadStatus, [HotlistInfo], FrameStats)? in
                    guard let u = try? s.pendingUploads(), let h = try? s.hotlistStatus() else { return nil }
                    return (u, h, s.frameStats())
                }.value
                if let self, let status {
                    self.uploads = status.0
                    self.hotlists = status.1
                    self.stats = status.2
                }
                try? await Task.sleep(nanoseconds: 5_000_000_000)
            }
        }
    }

    /// Uploads on an interval; failures arrive as events and the rows are retried.
    private func periodicSync(_ s: Scanner) -> Task<Void, Never> {
        let interval = UInt64(max(settings.syncIntervalSec, 15))
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: interval * 1_000_000_000)
                if Task.isCancelled { break }
                _ = try? await s.syncNow()
            }
        }
    }

    func syncNow() {
        guard let s = scanner else { return }
        Task {
            if let r = try? await s.syncNow() {
                message = AppModel.refusals(r) ?? AppModel.summary(r)
            }
        }
    }

    /// "Uploaded 3 encounter(s); hot lists: 1 updated, 2 current".
    static func summary(_ r: SyncReport) -> String {
        var updated = 0, current = 0, failed = 0
        for h in r.hotlists {
            switch h.outcome {
            case .updated: updated += 1
            case .unchanged: current += 1
            case .failed: failed += 1
            case .refused: break
            }
        }
        let stale = r.lists.filter(\.stale).count
        return "Uploaded \(r.stored + r.duplicates) encounter(s); hot lists: \(updated) updated, \(current) current"
            + (failed > 0 ? ", \(failed) not reachable" : "")
            + (stale > 0 ? ", \(stale) STALE" : "")
    }

    /// A warning naming every refused hot list (the device keeps its stored version), or nil.
    static func refusals(_ r: SyncReport) -> String? {
        let refused = r.hotlists.compactMap { h -> String? in
            if case let .refused(reason) = h.outcome { return "\(h.list): \(reason)" }
            return nil
        }
        if refused.isEmpty { return nil }
        return "Hot list REFUSED, the stored version is kept — " + refused.joined(separator: "; ")
    }

    // MARK: sessions

    /// Starts the session: the FFI opens it on the server first (reason code checked against the
    /// server's list, case number or justification required, audited there) and only then on
    /// the device. If the server cannot be reached or refuses, no session starts.
    func startSession(reasonCode: String, caseNumber: String, justification: String, onBehalfOf: String) {
        guard let s = scanner, let user else { return }
        let request = SessionStart(
            user: user, reasonCode: reasonCode, caseNumber: nonEmpty(caseNumber),
            justification: nonEmpty(justification), onBehalfOf: nonEmpty(onBehalfOf)
        )
        run {
            let info: SessionInfo
            do {
                info = try await s.startSession(request: request)
            } catch let e as PlatewatchError {
                if case .Unauthorized = e { AppSettings.forgetDeviceToken() }
                throw e
            }
            self.session = info
            self.frame = nil
            self.reads = []
            self.screen = .camera
        }
    }

    /// Ends the session on the device and on the server (a server that cannot record it is
    /// reported as an event), then uploads.
    func endSession() {
        guard let s = scanner, session != nil else { return }
        run {
            await self.stopCamera()
            _ = try await s.endSession()
            self.session = nil
            self.frame = nil
            self.screen = .session
            _ = try? await s.syncNow()
        }
    }

    // MARK: camera

    /// Asks for camera access, then starts the back camera feeding the scanner.
    func startCamera() {
        guard let s = scanner, feed == nil else { return }
        Task {
            guard await AVCaptureDevice.requestAccess(for: .video) else {
                message = "Scanning needs camera access (Settings → Platewatch → Camera)."
                return
            }
            guard feed == nil, scanner === s, session != nil else { return }
            location.start()
            let location = self.location
            let feed = CameraFeed(
                scanner: s,
                location: { location.latest() },
                onError: { [weak self] error in
                    let text = (error as? PlatewatchError)?.summary ?? error.localizedDescription
                    Task { @MainActor in self?.reportFrameError(text) }
                }
            )
            do {
                try feed.configure()
            } catch {
                message = "The camera could not be started: \(error.localizedDescription)"
                return
            }
            UIDevice.current.beginGeneratingDeviceOrientationNotifications()
            feed.rotationDegrees = AppModel.rotation(for: UIDevice.current.orientation, fallback: 90)
            orientationObserver = NotificationCenter.default.addObserver(
                forName: UIDevice.orientationDidChangeNotification, object: nil, queue: .main
            ) { [weak self] _ in
                Task { @MainActor in self?.updateRotation() }
            }
            feed.start()
            self.feed = feed
        }
    }

    private func stopCamera() async {
        guard let feed else { return }
        self.feed = nil
        location.stop()
        if let observer = orientationObserver {
            NotificationCenter.default.removeObserver(observer)
            orientationObserver = nil
            UIDevice.current.endGeneratingDeviceOrientationNotifications()
        }
        // Returns once no frame is being pushed any more.
        await Task.detached { feed.stopAndWait() }.value
    }

    private func updateRotation() {
        guard let feed else { return }
        feed.rotationDegrees = AppModel.rotation(for: UIDevice.current.orientation, fallback: feed.rotationDegrees)
    }

    /// Clockwise rotation making the back camera's buffer upright for a device orientation.
    static func rotation(for orientation: UIDeviceOrientation, fallback: Int32) -> Int32 {
        switch orientation {
        case .portrait: return 90
        case .landscapeLeft: return 0
        case .landscapeRight: return 180
        case .portraitUpsideDown: return 270
        default: return fallback
        }
    }

    private func reportFrameError(_ text: String) {
        if message != text { message = text }
    }

    // MARK: alerts

    func accept(_ alert: AlertEvent) {
        decide(alert) { try $0.acceptAlert(alertId: alert.alertId) }
    }

    func reject(_ alert: AlertEvent, reason: String) {
        decide(alert) { try $0.rejectAlert(alertId: alert.alertId, reason: reason) }
    }

    func correct(_ alert: AlertEvent, plate: String) {
        decide(alert) { try $0.correctRead(alertId: alert.alertId, correctedPlate: plate) }
    }

    private func decide(_ alert: AlertEvent, _ call: (Scanner) throws -> Void) {
        guard let s = scanner else { return }
        do {
            try call(s)
            alerts.removeAll { $0.alertId == alert.alertId }
        } catch {
            message = describe(error)
        }
    }

    // MARK: settings

    func openSettings() {
        if session == nil { screen = .settings }
    }

    func closeSettings() {
        guard settings.problem == nil else { return }
        screen = scanner == nil ? .login : .session
    }

    /// Saves the settings; the scanner takes thresholds and reason codes at creation, so it is
    /// re-created, and a new server means signing in again.
    func save(_ new: AppSettings) {
        if let problem = new.problem {
            message = problem
            return
        }
        guard session == nil else { return }
        let serverChanged = new.serverUrl != settings.serverUrl
        new.store()
        settings = AppSettings.load()
        run {
            if self.scanner != nil, let reg = self.registration, !serverChanged {
                var key = self.pinnedKey
                if let device = reg.device {
                    key = try await self.hotlistKey(server: reg.serverUrl, deviceToken: device.deviceToken)
                }
                try await self.openScanner(reg, hotlistKey: key)
                self.screen = .session
            } else {
                await self.closeScanner()
                self.resetToLogin()
            }
        }
    }

    // MARK: helpers

    private func resetToLogin() {
        user = nil
        rules = nil
        reasonCodes = []
        registration = nil
        pinnedKey = nil
        session = nil
        frame = nil
        reads = []
        alerts = []
        uploads = nil
        hotlists = []
        stats = nil
        screen = .login
        loadRules()
    }

    private func run(_ work: @escaping @MainActor () async throws -> Void) {
        busy = true
        message = nil
        Task {
            do {
                try await work()
            } catch {
                message = describe(error)
            }
            busy = false
        }
    }

    /// Messages from the library and the server never contain plate text.
    private func describe(_ error: Error) -> String {
        if let e = error as? PlatewatchError { return e.summary }
        if let e = error as? LocalizedError, let text = e.errorDescription { return text }
        return error.localizedDescription
    }

    private func nonEmpty(_ s: String) -> String? {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }
}
