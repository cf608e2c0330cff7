// App settings (SharedPreferences): server URL, reason codes, thresholds, device id, sealed device token.
package app.platewatch.app

import android.content.Context
import java.util.Base64
import java.util.UUID

/** What the settings screen edits. Zero thresholds mean "the engine's default". */
data class Settings(
    val serverUrl: String = "",
    /** The reason codes the server accepts (its `PLATEWATCH_REASON_CODES`); offered at session start. */
    val reasonCodes: List<String> = DEFAULT_REASON_CODES,
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
 * The device's registration: the server and user it belongs to, and its token (null once the
 * server has refused it: the next sign-in of that user registers the device again).
 */
data class Registration(val serverUrl: String, val user: String, val deviceToken: String?)

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
    )

    fun save(s: Settings) {
        prefs.edit()
            .putString(SERVER_URL, s.serverUrl.trim().trimEnd('/'))
            .putString(REASON_CODES, s.reasonCodes.joinToString(","))
            .putFloat(ALERT_THRESHOLD, s.alertThreshold)
            .putFloat(MIN_READ_CONFIDENCE, s.minReadConfidence)
            .putFloat(DETECTOR_THRESHOLD, s.detectorThreshold)
            .putInt(SYNC_INTERVAL, s.syncIntervalSec)
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
        return Registration(server, user, token)
    }

    fun saveRegistration(r: Registration) {
        val sealed = r.deviceToken?.let {
            Base64.getEncoder().encodeToString(vault.seal(it.toByteArray(Charsets.UTF_8)))
        }
        prefs.edit()
            .putString(REG_SERVER, r.serverUrl)
            .putString(REG_USER, r.user)
            .putString(REG_TOKEN, sealed)
            .apply()
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
    }
}
