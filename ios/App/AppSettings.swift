// App settings in UserDefaults (server URL, fallback reason codes, pinned hot list key, thresholds, upload interval, device id) and the device's registration (token in the Keychain).
import Foundation
import Platewatch
import PlatewatchFFI

/// What the settings screen edits. Zero thresholds mean "the engine's default".
struct AppSettings: Equatable {
    var serverUrl = ""
    /// Reason codes offered until the server's own list has been fetched after sign-in (the
    /// server checks the code at session start either way).
    var reasonCodes = AppSettings.defaultReasonCodes
    /// The hot list publisher key from the operator (base64, as `GET /v1/hotlists/key` shows
    /// it): every hot list must be signed with it. Empty: see `trustServerKey`.
    var hotlistKey = ""
    /// With no operator key, pin the key the server presents at the first sign-in (trust on
    /// first use). Off by default: without a key no hot list is accepted.
    var trustServerKey = false
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
        let key = hotlistKey.trimmingCharacters(in: .whitespacesAndNewlines)
        if !key.isEmpty, (try? hotlistKeyId(publicKey: key)) == nil {
            return "The hot list key is not a valid publisher key"
        }
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
        s.hotlistKey = defaults.string(forKey: "hotlist_key") ?? ""
        s.trustServerKey = defaults.bool(forKey: "trust_server_key")
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
        d.set(hotlistKey.trimmingCharacters(in: .whitespacesAndNewlines), forKey: "hotlist_key")
        d.set(trustServerKey, forKey: "trust_server_key")
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
        var device: DeviceRegistration?
        if let token, let id = (defaults.object(forKey: "registration_device_id") as? NSNumber)?.int64Value {
            device = DeviceRegistration(
                deviceId: id,
                deviceName: defaults.string(forKey: "registration_device_name") ?? "",
                deviceToken: token,
                issuedAtMs: (defaults.object(forKey: "registration_issued_at_ms") as? NSNumber)?.int64Value,
                expiresAtMs: (defaults.object(forKey: "registration_expires_at_ms") as? NSNumber)?.int64Value
            )
        }
        return Registration(serverUrl: server, user: user, device: device)
    }

    static func save(_ r: Registration) throws {
        defaults.set(r.serverUrl, forKey: "registration_server")
        defaults.set(r.user, forKey: "registration_user")
        if let device = r.device {
            defaults.set(NSNumber(value: device.deviceId), forKey: "registration_device_id")
            defaults.set(device.deviceName, forKey: "registration_device_name")
            defaults.set(device.issuedAtMs.map { NSNumber(value: $0) }, forKey: "registration_issued_at_ms")
            defaults.set(device.expiresAtMs.map { NSNumber(value: $0) }, forKey: "registration_expires_at_ms")
            try Keychain.write(account: "device-token", data: Data(device.deviceToken.utf8))
        } else {
            defaults.removeObject(forKey: "registration_device_id")
            defaults.removeObject(forKey: "registration_device_name")
            defaults.removeObject(forKey: "registration_issued_at_ms")
            defaults.removeObject(forKey: "registration_expires_at_ms")
            Keychain.delete(account: "device-token")
        }
    }

    /// The hot list key pinned on first use for `server` (see `trustServerKey`).
    static func pinnedServerKey(server: String) -> String? {
        guard defaults.string(forKey: "tofu_hotlist_server") == server else { return nil }
        return defaults.string(forKey: "tofu_hotlist_key")
    }

    /// Pins `key` for `server`; it is never replaced by what the server says later.
    static func pinServerKey(server: String, key: String) {
        defaults.set(server, forKey: "tofu_hotlist_server")
        defaults.set(key, forKey: "tofu_hotlist_key")
    }

    /// A sync renewed the device token: the renewed registration replaces the stored one.
    static func saveRenewed(_ device: DeviceRegistration) {
        guard let r = registration() else { return }
        try? save(Registration(serverUrl: r.serverUrl, user: r.user, device: device))
    }

    /// The server refused the token: keep who the device belongs to, drop the token.
    static func forgetDeviceToken() {
        Keychain.delete(account: "device-token")
    }
}

/// The device's registration: the server and user it belongs to, and the device (id, name,
/// token; nil once the server has refused the token: the next sign-in registers it again).
struct Registration: Sendable {
    let serverUrl: String
    let user: String
    let device: DeviceRegistration?
}
