// App settings (SharedPreferences): server URL, fallback reason codes, pinned hot list key, thresholds, device id, the device's registration (token sealed by the Keystore).
package app.platewatch.app

import android.content.Context
import app.platewatch.ffi.DeviceRegistration
import java.util.Base64
import java.util.UUID

/** What the settings screen edits. Zero thresholds mean "the engine's default". */
data class Settings(
    val serverUrl: String = "",
    /**
     * Reason codes offered at session start until the server's own list has been fetched
     * (after sign-in the server's list is used; the server checks the code either way).
     */
    val reasonCodes: List<String> = DEFAULT_REASON_CODES,
    /**
     * The hot list publisher key from the operator (base64, as `GET /v1/hotlists/key` shows
     * it): every hot list must be signed with it. Empty: see [trustServerKey].
     */
    val hotlistKey: String = "",
    /**
     * With no operator key, pin the key the server presents at the first sign-in (trust on
     * first use). Off by default: without a key no hot list is accepted.
     */
    val trustServerKey: Boolean = false,
    val alertThreshold: Float = 0f,
    val minReadConfidence: Float = 0f,
    val detectorThreshold: Float = 0f,
    val syncIntervalSec: Int = 60,
) {
    /** A message for the first thing wrong, or null. */
    fun problem(): String? = when {
        !serverUrl.startsWith("https://") -> "The server URL must start with https://"
        reasonCodes.isEmpty() -> "At least one reason code is needed"
        listOf(alertThreshold, minReadConfidence, detectorThreshold).any { it < 0f || it >= 1f } ->
            "Thresholds are between 0 (default) and 1"
        syncIntervalSec < 15 -> "Upload at most every 15 seconds"
        else -> null
    }

    companion object {
        /** The server's defaults (server/src/config.rs). */
        val DEFAULT_REASON_CODES = listOf(
            "patrol", "investigation", "stolen-vehicle", "wanted-person", "missing-person", "amber-alert",
        )
    }
}

/**
 * The device's registration: the server and user it belongs to, and the device (id, name,
 * token; null once the server has refused the token: the next sign-in registers it again).
 */
data class Registration(val serverUrl: String, val user: String, val device: DeviceRegistration?)

class AppSettings(context: Context, private val vault: KeystoreVault) {
    private val prefs = context.getSharedPreferences("platewatch", Context.MODE_PRIVATE)

    fun load(): Settings = Settings(
        serverUrl = prefs.getString(SERVER_URL, "") ?: "",
        reasonCodes = prefs.getString(REASON_CODES, null)?.split(",")?.map { it.trim() }?.filter { it.isNotEmpty() }
            ?: Settings.DEFAULT_REASON_CODES,
        alertThreshold = prefs.getFloat(ALERT_THRESHOLD, 0f),
        minReadConfidence = prefs.getFloat(MIN_READ_CONFIDENCE, 0f),
        detectorThreshold = prefs.getFloat(DETECTOR_THRESHOLD, 0f),
        syncIntervalSec = prefs.getInt(SYNC_INTERVAL, 60),
        hotlistKey = prefs.getString(HOTLIST_KEY, "") ?: "",
        trustServerKey = prefs.getBoolean(TRUST_SERVER_KEY, false),
    )

    fun save(s: Settings) {
        prefs.edit()
            .putString(SERVER_URL, s.serverUrl.trim().trimEnd('/'))
            .putString(REASON_CODES, s.reasonCodes.joinToString(","))
            .putFloat(ALERT_THRESHOLD, s.alertThreshold)
            .putFloat(MIN_READ_CONFIDENCE, s.minReadConfidence)
            .putFloat(DETECTOR_THRESHOLD, s.detectorThreshold)
            .putInt(SYNC_INTERVAL, s.syncIntervalSec)
            .putString(HOTLIST_KEY, s.hotlistKey.trim())
            .putBoolean(TRUST_SERVER_KEY, s.trustServerKey)
            .apply()
    }

    /** A random identifier made on first use (copied into every encounter); not a hardware id. */
    @Synchronized
    fun deviceId(): String = prefs.getString(DEVICE_ID, null) ?: UUID.randomUUID().toString().also {
        prefs.edit().putString(DEVICE_ID, it).apply()
    }

    fun registration(): Registration? {
        val server = prefs.getString(REG_SERVER, null) ?: return null
        val user = prefs.getString(REG_USER, null) ?: return null
        val token = prefs.getString(REG_TOKEN, null)?.let { sealed ->
            runCatching { String(vault.open(Base64.getDecoder().decode(sealed)), Charsets.UTF_8) }.getOrNull()
        }
        val id = prefs.getLong(REG_DEVICE_ID, -1L)
        val device = if (token != null && id >= 0) {
            DeviceRegistration(
                id,
                prefs.getString(REG_DEVICE_NAME, "") ?: "",
                token,
                prefs.getLong(REG_ISSUED_AT, -1L).takeIf { it >= 0 },
                prefs.getLong(REG_EXPIRES_AT, -1L).takeIf { it >= 0 },
            )
        } else {
            null
        }
        return Registration(server, user, device)
    }

    fun saveRegistration(r: Registration) {
        val sealed = r.device?.let {
            Base64.getEncoder().encodeToString(vault.seal(it.deviceToken.toByteArray(Charsets.UTF_8)))
        }
        prefs.edit()
            .putString(REG_SERVER, r.serverUrl)
            .putString(REG_USER, r.user)
            .putLong(REG_DEVICE_ID, r.device?.deviceId ?: -1L)
            .putString(REG_DEVICE_NAME, r.device?.deviceName)
            .putLong(REG_ISSUED_AT, r.device?.issuedAtMs ?: -1L)
            .putLong(REG_EXPIRES_AT, r.device?.expiresAtMs ?: -1L)
            .putString(REG_TOKEN, sealed)
            .apply()
    }

    /** The hot list key pinned on first use for [server] (see [Settings.trustServerKey]). */
    fun pinnedServerKey(server: String): String? =
        prefs.getString(TOFU_KEY, null)?.takeIf { prefs.getString(TOFU_SERVER, null) == server }

    /** Pins [key] for [server]; it is never replaced by what the server says later. */
    fun pinServerKey(server: String, key: String) {
        prefs.edit().putString(TOFU_SERVER, server).putString(TOFU_KEY, key).apply()
    }

    /** A sync renewed the device token: the renewed registration replaces the stored one. */
    fun saveRenewedDevice(device: DeviceRegistration) {
        registration()?.let { saveRegistration(it.copy(device = device)) }
    }

    /** The server refused the device token: keep who the device belongs to, drop the token. */
    fun forgetDeviceToken() {
        prefs.edit().remove(REG_TOKEN).apply()
    }

    private companion object {
        const val SERVER_URL = "server_url"
        const val REASON_CODES = "reason_codes"
        const val ALERT_THRESHOLD = "alert_threshold"
        const val MIN_READ_CONFIDENCE = "min_read_confidence"
        const val DETECTOR_THRESHOLD = "detector_threshold"
        const val SYNC_INTERVAL = "sync_interval_sec"
        const val DEVICE_ID = "device_id"
        const val REG_SERVER = "registration_server"
        const val REG_USER = "registration_user"
        const val REG_TOKEN = "registration_token_sealed"
        const val REG_DEVICE_ID = "registration_device_id"
        const val REG_DEVICE_NAME = "registration_device_name"
        const val REG_ISSUED_AT = "registration_issued_at_ms"
        const val REG_EXPIRES_AT = "registration_expires_at_ms"
        const val HOTLIST_KEY = "hotlist_key"
        const val TRUST_SERVER_KEY = "trust_server_key"
        const val TOFU_SERVER = "tofu_hotlist_server"
        const val TOFU_KEY = "tofu_hotlist_key"
    }
}
