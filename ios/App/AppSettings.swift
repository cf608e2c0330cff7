// App settings in UserDefaults (server URL, reason codes, thresholds, upload interval, device id) and the device's registration.
import Foundation
import Platewatch

/// What the settings screen edits. Zero thresholds mean "the engine's default".
struct AppSettings: Equatable {
    var serverUrl = ""
    /// The reason codes the server accepts (its PLATEWATCH_REASON_CODES).
    var reasonCodes = AppSettings.defaultReasonCodes
    var alertThreshold: Float = 0
    var minReadConfidence: Float = 0
    var detectorThreshold: Float = 0
    var syncIntervalSec = 60

    /// The server's defaults (server/src/config.rs).
    static let defaultReasonCodes = [
        "patrol", "investigation", "stolen-vehicle", "wanted-person", "missing-person", "amber-alert",
    ]

    /// The first thing wrong, or nil.
    var problem: String? {
        if !serverUrl.hasPrefix("https://") { return "The server URL must start with https://" }
        if reasonCodes.isEmpty { return "At least one reason code is needed" }
        if [alertThreshold, minReadConfidence, detectorThreshold].contains(where: { $0 < 0 || $0 >= 1 }) {
            return "Thresholds are between 0 (default) and 1"
        }
        if syncIntervalSec < 15 { return "Upload at most every 15 seconds" }
        return nil
    }

    private static let defaults = UserDefaults.standard

    static func load() -> AppSettings {
        var s = AppSettings()
        s.serverUrl = defaults.string(forKey: "server_url") ?? ""
        if let codes = defaults.stringArray(forKey: "reason_codes"), !codes.isEmpty { s.reasonCodes = codes }
        s.alertThreshold = defaults.float(forKey: "alert_threshold")
        s.minReadConfidence = defaults.float(forKey: "min_read_confidence")
        s.detectorThreshold = defaults.float(forKey: "detector_threshold")
        let interval = defaults.integer(forKey: "sync_interval_sec")
        s.syncIntervalSec = interval > 0 ? interval : 60
        return s
    }

    func store() {
        let d = AppSettings.defaults
        var url = serverUrl.trimmingCharacters(in: .whitespaces)
        while url.hasSuffix("/") { url.removeLast() }
        d.set(url, forKey: "server_url")
        d.set(reasonCodes, forKey: "reason_codes")
        d.set(alertThreshold, forKey: "alert_threshold")
        d.set(minReadConfidence, forKey: "min_read_confidence")
        d.set(detectorThreshold, forKey: "detector_threshold")
        d.set(syncIntervalSec, forKey: "sync_interval_sec")
    }

    /// A random identifier made on first use (copied into every encounter); not a hardware id.
    static func deviceId() -> String {
        if let id = defaults.string(forKey: "device_id") { return id }
        let id = UUID().uuidString.lowercased()
        defaults.set(id, forKey: "device_id")
        return id
    }

    // MARK: registration (server and user in UserDefaults, the device token in the Keychain)

    static func registration() -> Registration? {
        guard let server = defaults.string(forKey: "registration_server"),
              let user = defaults.string(forKey: "registration_user") else { return nil }
        let token = (try? Keychain.read(account: "device-token")).flatMap { String(data: $0, encoding: .utf8) }
        return Registration(serverUrl: server, user: user, deviceToken: token)
    }

    static func save(_ r: Registration) throws {
        defaults.set(r.serverUrl, forKey: "registration_server")
        defaults.set(r.user, forKey: "registration_user")
        if let token = r.deviceToken {
            try Keychain.write(account: "device-token", data: Data(token.utf8))
        } else {
            Keychain.delete(account: "device-token")
        }
    }

    /// The server refused the token: keep who the device belongs to, drop the token.
    static func forgetDeviceToken() {
        Keychain.delete(account: "device-token")
    }
}

/// The device's registration: the server and user it belongs to, and its token (nil once the
/// server has refused it; the next sign-in of that user registers the device again).
struct Registration: Sendable {
    let serverUrl: String
    let user: String
    let deviceToken: String?
}
