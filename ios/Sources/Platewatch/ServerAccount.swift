// The account calls the FFI does not cover: sign-in with the rules of behaviour, device registration, session start/end on the server.
import Foundation

public enum LoginResult: Sendable {
    /// Signed in; keep the session token in memory only.
    case signedIn(sessionToken: String, rulesVersion: Int64?)
    /// The server's rules of behaviour must be read and acknowledged (by version).
    case rulesRequired(version: Int64, text: String)
}

/// The server refused a request (status and its message; never plate text).
public struct ServerError: Error, LocalizedError {
    public let status: Int
    public let message: String
    public var errorDescription: String? { "Server: \(message)" }
}

/// The same calls as sync/src/account.rs, over URLSession. Passwords and tokens are never logged.
public enum ServerAccount {
    public static func login(
        server: String, user: String, password: String, acknowledgeRulesVersion: Int64?
    ) async throws -> LoginResult {
        let body: [String: Any] = [
            "username": user,
            "password": password,
            "acknowledge_rules_version": orNull(acknowledgeRulesVersion),
        ]
        let (status, json) = try await post(server, "/v1/login", bearer: nil, body: body)
        if status == 200, let token = json["token"] as? String {
            return .signedIn(sessionToken: token, rulesVersion: (json["rules_version"] as? NSNumber)?.int64Value)
        }
        if status == 403, json["code"] as? String == "rules_not_acknowledged",
           let version = (json["rules_version"] as? NSNumber)?.int64Value {
            return .rulesRequired(version: version, text: json["rules_text"] as? String ?? "")
        }
        throw refused(status, json)
    }

    /// `POST /v1/devices` with the login session token; returns the long-lived device token.
    public static func registerDevice(server: String, sessionToken: String, name: String) async throws -> String {
        let (status, json) = try await post(server, "/v1/devices", bearer: sessionToken, body: ["name": name])
        guard status == 200 || status == 201, let token = json["token"] as? String else { throw refused(status, json) }
        return token
    }

    /// `POST /v1/sessions` with the device token: the server checks the reason code and audits
    /// the session (same id as the scanner's local session).
    public static func startSession(
        server: String, deviceToken: String, id: String, reasonCode: String,
        caseNumber: String?, justification: String?, onBehalfOf: String?
    ) async throws {
        let body: [String: Any] = [
            "id": id,
            "reason_code": reasonCode,
            "case_number": orNull(caseNumber),
            "justification": orNull(justification),
            "on_behalf_of": orNull(onBehalfOf),
        ]
        let (status, json) = try await post(server, "/v1/sessions", bearer: deviceToken, body: body)
        guard status == 200 || status == 201 else { throw refused(status, json) }
    }

    /// `POST /v1/sessions/{id}/end`; a session the server already ended is fine.
    public static func endSession(server: String, deviceToken: String, id: String) async throws {
        let (status, json) = try await post(server, "/v1/sessions/\(id)/end", bearer: deviceToken, body: [:])
        guard status == 200 || status == 201 || status == 409 else { throw refused(status, json) }
    }

    /// A JSON null for a missing value.
    private static func orNull(_ value: Any?) -> Any { value ?? NSNull() }

    private static func refused(_ status: Int, _ json: [String: Any]) -> ServerError {
        ServerError(status: status, message: json["error"] as? String ?? "the server answered HTTP \(status)")
    }

    private static func post(
        _ server: String, _ path: String, bearer: String?, body: [String: Any]
    ) async throws -> (Int, [String: Any]) {
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        guard let url = URL(string: base + path) else { throw ServerError(status: 0, message: "bad server URL") }
        var request = URLRequest(url: url, timeoutInterval: 15)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, json)
    }
}
