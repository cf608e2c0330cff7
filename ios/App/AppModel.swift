// The app's state: sign-in, the Scanner (released on sign-out), sessions, the camera feed, scanner events as published state, alert decisions.
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
    /// Set when the server asked for its rules of behaviour to be acknowledged.
    @Published private(set) var rules: RulesPrompt?
    @Published private(set) var session: SessionInfo?
    @Published private(set) var sessionWarning: String?
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
    private var tasks: [Task<Void, Never>] = []
    private var orientationObserver: NSObjectProtocol?
    let location = LocationFeed()
    private let signal = AlertSignal()

    init() {
        let s = AppSettings.load()
        settings = s
        screen = s.problem == nil ? .login : .settings
    }

    // MARK: sign-in

    /// Signs in. When the server has rules of behaviour the first attempt returns them (shown by
    /// the login view); the user ticks the acknowledgement and the next attempt sends its version.
    func signIn(user: String, password: String, acknowledged: Bool) {
        let server = settings.serverUrl
        let name = user.trimmingCharacters(in: .whitespaces)
        let ack = acknowledged ? rules?.version : nil
        run {
            switch try await ServerAccount.login(server: server, user: name, password: password, acknowledgeRulesVersion: ack) {
            case let .rulesRequired(version, text):
                self.rules = RulesPrompt(version: version, text: text)
            case let .signedIn(sessionToken, _):
                let reg = try await self.registration(server: server, user: name, sessionToken: sessionToken)
                try await self.openScanner(reg)
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

    /// The stored registration for this server and user, or a new one. The device is not handed
    /// to another user or server while the previous one's encounters wait to upload.
    private func registration(server: String, user: String, sessionToken: String) async throws -> Registration {
        let old = AppSettings.registration()
        if let old, old.serverUrl == server, old.user == user, old.deviceToken != nil { return old }
        if let old, old.serverUrl != server || old.user != user { try await ensureNothingPending(old) }
        let token = try await ServerAccount.registerDevice(
            server: server, sessionToken: sessionToken, name: "Platewatch \(UIDevice.current.model)"
        )
        let reg = Registration(serverUrl: server, user: user, deviceToken: token)
        try AppSettings.save(reg)
        return reg
    }

    private func ensureNothingPending(_ previous: Registration) async throws {
        let config = try scannerConfig(previous)
        let canUpload = previous.deviceToken != nil
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

    private func scannerConfig(_ reg: Registration) throws -> ScannerConfig {
        guard let detector = Bundle.main.path(forResource: "plate_detector", ofType: "onnx"),
              let reader = Bundle.main.path(forResource: "plate_reader", ofType: "onnx")
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
            storePath: dir.appendingPathComponent("device.db").path,
            deviceId: AppSettings.deviceId(),
            cameraId: "rear",
            reasonCodes: settings.reasonCodes,
            serverUrl: reg.serverUrl,
            deviceToken: reg.deviceToken,
            imageKey: try Keychain.imageKey(),
            detectorThreshold: settings.detectorThreshold,
            minReadConfidence: settings.minReadConfidence,
            alertThreshold: settings.alertThreshold
        )
    }

    private func openScanner(_ reg: Registration) async throws {
        await closeScanner()
        let config = try scannerConfig(reg)
        // Model loading takes a few hundred milliseconds: off the main thread.
        let s = try await Task.detached { try Scanner(config: config) }.value
        scanner = s
        registration = reg
        tasks = [listen(s), pollStatus(s), periodicSync(s)]
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
                message = "Uploaded \(r.stored + r.duplicates) encounter(s)"
            }
        }
    }

    // MARK: sessions

    /// Starts the session on the device (reason code checked, case number or justification
    /// required) and registers it on the server, which checks the reason again and audits it.
    /// A refusal ends the local session; an unreachable server is shown as a warning.
    func startSession(reasonCode: String, caseNumber: String, justification: String, onBehalfOf: String) {
        guard let s = scanner, let reg = registration, let user else { return }
        let caseNumber = nonEmpty(caseNumber)
        let justification = nonEmpty(justification)
        let onBehalfOf = nonEmpty(onBehalfOf)
        run {
            let info = try s.startSession(request: SessionStart(
                user: user, reasonCode: reasonCode, caseNumber: caseNumber,
                justification: justification, onBehalfOf: onBehalfOf
            ))
            var warning: String?
            do {
                guard let token = reg.deviceToken else {
                    throw ServerError(status: 401, message: "this device's token was refused; sign in again")
                }
                try await ServerAccount.startSession(
                    server: reg.serverUrl, deviceToken: token, id: info.id, reasonCode: reasonCode,
                    caseNumber: caseNumber, justification: justification, onBehalfOf: onBehalfOf
                )
            } catch let refused as ServerError {
                try? s.endSession()
                if refused.status == 401 { AppSettings.forgetDeviceToken() }
                throw refused
            } catch {
                warning = "The server could not be reached: the session is kept on this device and with every encounter."
            }
            self.session = info
            self.sessionWarning = warning
            self.frame = nil
            self.reads = []
            self.screen = .camera
        }
    }

    func endSession() {
        guard let s = scanner, let id = session?.id else { return }
        let reg = registration
        run {
            await self.stopCamera()
            try await Task.detached { try s.endSession() }.value
            self.session = nil
            self.sessionWarning = nil
            self.frame = nil
            self.screen = .session
            if let reg, let token = reg.deviceToken {
                try? await ServerAccount.endSession(server: reg.serverUrl, deviceToken: token, id: id)
            }
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
                try await self.openScanner(reg)
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
        registration = nil
        session = nil
        frame = nil
        reads = []
        alerts = []
        uploads = nil
        hotlists = []
        stats = nil
        screen = .login
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
