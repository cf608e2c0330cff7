// The account calls the FFI does not cover: sign-in with the rules of behaviour, device registration, session start/end on the server.
package app.platewatch.app

import java.io.IOException
import java.net.HttpURLConnection
import java.net.URL
import org.json.JSONObject

/** What `POST /v1/login` answered. */
sealed interface LoginResult {
    /** Signed in; the session token is short-lived and kept in memory only. */
    class SignedIn(val sessionToken: String, val rulesVersion: Long?) : LoginResult

    /** The server has rules of behaviour the user must read and acknowledge (by version). */
    data class RulesRequired(val version: Long, val text: String) : LoginResult
}

/** The server refused a request (HTTP status and the server's message; never plate text). */
class ServerException(val status: Int, message: String) : IOException(message)

/**
 * The same calls as sync/src/account.rs (the command line's device loop), over
 * HttpURLConnection. Blocking: call from Dispatchers.IO. Passwords and tokens are never logged.
 */
object ServerAccount {
    private const val TIMEOUT_MS = 15_000

    fun login(server: String, user: String, password: String, acknowledgeRulesVersion: Long?): LoginResult {
        val body = JSONObject()
            .put("username", user)
            .put("password", password)
            .put("acknowledge_rules_version", acknowledgeRulesVersion ?: JSONObject.NULL)
        val (status, json) = post(server, "/v1/login", null, body)
        if (status == 200) {
            val version = if (json.isNull("rules_version")) null else json.getLong("rules_version")
            return LoginResult.SignedIn(json.getString("token"), version)
        }
        if (status == 403 && json.optString("code") == "rules_not_acknowledged") {
            return LoginResult.RulesRequired(json.getLong("rules_version"), json.optString("rules_text"))
        }
        throw refused(status, json)
    }

    /** `POST /v1/devices` with the login session token; returns the long-lived device token. */
    fun registerDevice(server: String, sessionToken: String, name: String): String {
        val (status, json) = post(server, "/v1/devices", sessionToken, JSONObject().put("name", name))
        if (status != 200 && status != 201) throw refused(status, json)
        return json.getString("token")
    }

    /**
     * `POST /v1/sessions` with the device token: the server checks the reason code against its
     * list and audits the session (same id as the scanner's local session).
     */
    fun startSession(
        server: String,
        deviceToken: String,
        id: String,
        reasonCode: String,
        caseNumber: String?,
        justification: String?,
        onBehalfOf: String?,
    ) {
        val body = JSONObject()
            .put("id", id)
            .put("reason_code", reasonCode)
            .put("case_number", caseNumber ?: JSONObject.NULL)
            .put("justification", justification ?: JSONObject.NULL)
            .put("on_behalf_of", onBehalfOf ?: JSONObject.NULL)
        val (status, json) = post(server, "/v1/sessions", deviceToken, body)
        if (status != 200 && status != 201) throw refused(status, json)
    }

    /** `POST /v1/sessions/{id}/end`; a session the server already ended is fine. */
    fun endSession(server: String, deviceToken: String, id: String) {
        val (status, json) = post(server, "/v1/sessions/$id/end", deviceToken, JSONObject())
        if (status != 200 && status != 201 && status != 409) throw refused(status, json)
    }

    private fun refused(status: Int, json: JSONObject) =
        ServerException(status, json.optString("error").ifBlank { "the server answered HTTP $status" })

    private fun post(server: String, path: String, bearer: String?, body: JSONObject): Pair<Int, JSONObject> {
        val conn = URL(server.trimEnd('/') + path).openConnection() as HttpURLConnection
        try {
            conn.requestMethod = "POST"
            conn.connectTimeout = TIMEOUT_MS
            conn.readTimeout = TIMEOUT_MS
            conn.doOutput = true
            conn.setRequestProperty("Content-Type", "application/json")
            conn.setRequestProperty("Accept", "application/json")
            if (bearer != null) conn.setRequestProperty("Authorization", "Bearer $bearer")
            conn.outputStream.use { it.write(body.toString().toByteArray(Charsets.UTF_8)) }
            val status = conn.responseCode
            val stream = if (status >= 400) conn.errorStream else conn.inputStream
            val text = stream?.use { it.readBytes().toString(Charsets.UTF_8) }.orEmpty()
            val json = runCatching { JSONObject(text) }.getOrElse { JSONObject() }
            return status to json
        } finally {
            conn.disconnect()
        }
    }
}
