// The app's state holder: sign-in through the FFI (rules of behaviour, device registration, hot list key pinning), the Scanner (closed in onCleared), sessions, camera analysis, scanner events as UI state, alert decisions.
package app.platewatch.app

import android.app.Application
import android.os.Build
import android.util.Size
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import app.platewatch.ScanEvent
import app.platewatch.ScannerAnalyzer
import app.platewatch.events
import app.platewatch.ffi.AlertEvent
import app.platewatch.ffi.ErrorKind
import app.platewatch.ffi.FrameResult
import app.platewatch.ffi.FrameStats
import app.platewatch.ffi.HotlistInfo
import app.platewatch.ffi.HotlistOutcome
import app.platewatch.ffi.ModelSource
import app.platewatch.ffi.PlateReadEvent
import app.platewatch.ffi.PlatewatchException
import app.platewatch.ffi.RulesOfBehaviour
import app.platewatch.ffi.ScanError
import app.platewatch.ffi.Scanner
import app.platewatch.ffi.ScannerConfig
import app.platewatch.ffi.SessionInfo
import app.platewatch.ffi.SessionStart
import app.platewatch.ffi.SignInRequest
import app.platewatch.ffi.SignInResult
import app.platewatch.ffi.SyncPhase
import app.platewatch.ffi.SyncReport
import app.platewatch.ffi.UploadStatus
import app.platewatch.ffi.fetchHotlistKey
import app.platewatch.ffi.fetchRules
import app.platewatch.ffi.signIn as ffiSignIn
import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

enum class Screen { LOGIN, SESSION, CAMERA, SETTINGS }

/** Everything the screens show. Plate text appears on screen only, never in logs. */
data class UiState(
    val screen: Screen = Screen.LOGIN,
    val busy: Boolean = false,
    val user: String? = null,
    /**
     * The server's rules of behaviour to acknowledge at sign-in: shown before signing in when
     * this device can read them with its token, or returned by the first sign-in attempt.
     */
    val rules: RulesOfBehaviour? = null,
    /** The server's reason codes, fetched after sign-in (empty: the settings' list is offered). */
    val reasonCodes: List<String> = emptyList(),
    val session: SessionInfo? = null,
    /** The newest processed frame: plate boxes and per-frame reads for the overlay. */
    val frame: FrameResult? = null,
    /** Consensus reads of the last vehicle passes, newest first. */
    val reads: List<PlateReadEvent> = emptyList(),
    /** Alerts waiting for the officer's decision, oldest first (the first is shown). */
    val alerts: List<AlertEvent> = emptyList(),
    val uploads: UploadStatus? = null,
    val hotlists: List<HotlistInfo> = emptyList(),
    val stats: FrameStats? = null,
    val syncing: Boolean = false,
    val message: String? = null,
)

class PlatewatchViewModel(app: Application) : AndroidViewModel(app) {
    private val vault = KeystoreVault(app)
    private val store = AppSettings(app, vault)
    private val signal = AlertSignal(app)
    val location = LocationFeed(app)

    private val _settings = MutableStateFlow(store.load())
    val settings: StateFlow<Settings> = _settings.asStateFlow()

    private val _state = MutableStateFlow(
        UiState(screen = if (_settings.value.problem() == null) Screen.LOGIN else Screen.SETTINGS),
    )
    val state: StateFlow<UiState> = _state.asStateFlow()

    init {
        loadRules()
    }

    /** The one Scanner, from sign-in until sign-out or onCleared. Touched on the main thread. */
    private var scanner: Scanner? = null
    private var registration: Registration? = null
    private var pinnedKey: String? = null
    private var scannerJobs: List<Job> = emptyList()

    /** The camera analysis thread (ScannerAnalyzer returns at once; frames are dropped in Rust). */
    private val analysisExecutor: ExecutorService =
        Executors.newSingleThreadExecutor { r -> Thread(r, "platewatch-analysis") }
    private var analysis: ImageAnalysis? = null

    /** Outlives viewModelScope, to finish the session and close the scanner after onCleared. */
    private val cleanupScope = CoroutineScope(SupervisorJob() + Dispatchers.IO)

    // ---- sign-in ---------------------------------------------------------------------------

    /**
     * Signs in on the configured server through the FFI, which registers the device (or keeps
     * its registration while the server accepts it). When the server has rules of behaviour
     * that were not acknowledged, the answer is the rules (shown by the login screen); the user
     * must tick the acknowledgement, and the next attempt sends the version acknowledged. A
     * device is not handed to another user or server while encounters recorded for the
     * previous one are still waiting to upload (as the command line refuses it too).
     */
    fun signIn(user: String, password: String, acknowledged: Boolean) {
        val server = _settings.value.serverUrl
        val name = user.trim()
        val ack = _state.value.rules?.version?.takeIf { acknowledged }
        launchBusy {
            val old = store.registration()
            if (old != null && (old.serverUrl != server || old.user != name)) ensureNothingPending(old)
            val request = SignInRequest(
                serverUrl = server,
                user = name,
                password = password,
                acknowledgeRulesVersion = ack,
                deviceName = "Platewatch ${Build.MANUFACTURER} ${Build.MODEL}",
                existingDevice = old?.takeIf { it.serverUrl == server && it.user == name }?.device,
            )
            when (val r = ffiSignIn(request)) {
                is SignInResult.RulesRequired -> _state.update { it.copy(rules = r.rules) }
                is SignInResult.SignedIn -> {
                    val reg = Registration(server, name, r.device)
                    store.saveRegistration(reg)
                    openScanner(reg, hotlistKey(server, r.device.deviceToken))
                    _state.update { it.copy(user = name, rules = null, screen = Screen.SESSION) }
                }
            }
        }
    }

    fun signOut() {
        if (_state.value.session != null) return
        launchBusy {
            closeScanner()
            _state.update { UiState(screen = Screen.LOGIN) }
            loadRules()
        }
    }

    /**
     * Shows the server's current rules of behaviour on the login screen when this device has
     * a token to read them with; otherwise the first sign-in attempt returns them.
     */
    private fun loadRules() {
        val reg = store.registration() ?: return
        val device = reg.device ?: return
        if (reg.serverUrl != _settings.value.serverUrl) return
        viewModelScope.launch {
            try {
                val rules = fetchRules(reg.serverUrl, device.deviceToken)
                _state.update { if (it.screen == Screen.LOGIN && it.rules == null) it.copy(rules = rules) else it }
            } catch (e: PlatewatchException) {
                // Not fatal: signing in returns the rules when they must be acknowledged.
            }
        }
    }

    /**
     * The hot list key to pin: the operator's (settings); else the key pinned on first use for
     * this server; else, only when the settings say to trust the server's key, the key the
     * server presents now, pinned from then on. Null: no hot list is accepted (sync says so).
     */
    private suspend fun hotlistKey(server: String, deviceToken: String): String? {
        _settings.value.hotlistKey.trim().takeIf { it.isNotEmpty() }?.let { return it }
        store.pinnedServerKey(server)?.let { return it }
        if (!_settings.value.trustServerKey) return null
        val key = fetchHotlistKey(server, deviceToken)
        store.pinServerKey(server, key.publicKey)
        _state.update { it.copy(message = "Hot list key ${key.keyId} pinned (trusted on first use)") }
        return key.publicKey
    }

    private suspend fun ensureNothingPending(previous: Registration) {
        val pending = io {
            createScanner(previous, null).use { s ->
                if (s.pendingUploads().pending > 0 && previous.device != null) {
                    try {
                        s.syncNow()
                    } catch (e: PlatewatchException) {
                        // Counted below.
                    }
                }
                s.pendingUploads().pending
            }
        }
        if (pending > 0) {
            throw IllegalStateException(
                "$pending encounter(s) recorded for ${previous.user} on ${previous.serverUrl} have not " +
                    "been uploaded yet; sign in as ${previous.user} and sync first",
            )
        }
    }

    // ---- the scanner -----------------------------------------------------------------------

    private suspend fun createScanner(reg: Registration, hotlistKey: String?): Scanner = io {
        val app = getApplication<Application>()
        val s = _settings.value
        Scanner(
            ScannerConfig(
                detector = ModelSource.Bytes(app.assets.open("plate_detector.onnx").use { it.readBytes() }),
                reader = ModelSource.Bytes(app.assets.open("plate_reader.onnx").use { it.readBytes() }),
                refiner = ModelSource.Bytes(app.assets.open("plate_refiner.onnx").use { it.readBytes() }),
                storePath = File(app.noBackupFilesDir, "device.db").path,
                deviceId = store.deviceId(),
                cameraId = "rear",
                reasonCodes = s.reasonCodes,
                serverUrl = reg.serverUrl,
                device = reg.device,
                hotlistKey = hotlistKey,
                imageKey = vault.imageKey(),
                detectorThreshold = s.detectorThreshold,
                minReadConfidence = s.minReadConfidence,
                alertThreshold = s.alertThreshold,
            ),
        )
    }

    /** Opens the scanner, fetches the server's reason codes and syncs (uploads, hot lists) once. */
    private suspend fun openScanner(reg: Registration, hotlistKey: String?) {
        closeScanner()
        val s = createScanner(reg, hotlistKey)
        scanner = s
        registration = reg
        pinnedKey = hotlistKey
        scannerJobs = listOf(collectEvents(s), pollStatus(s), periodicSync(s), firstSync(s))
    }

    private fun firstSync(s: Scanner) = viewModelScope.launch {
        try {
            val codes = s.reasonCodes()
            _state.update { it.copy(reasonCodes = codes) }
        } catch (e: PlatewatchException) {
            // The settings' list is offered; the server checks the code at session start.
        }
        try {
            s.syncNow()
        } catch (e: PlatewatchException) {
            // Reported through the events flow.
        }
    }

    private suspend fun closeScanner() {
        stopAnalysis()
        scannerJobs.forEach { it.cancelAndJoin() }
        scannerJobs = emptyList()
        val s = scanner ?: return
        scanner = null
        io { s.close() }
    }

    private fun collectEvents(s: Scanner) = viewModelScope.launch {
        s.events().collect { e ->
            when (e) {
                is ScanEvent.Frame -> _state.update { it.copy(frame = e.frame) }
                is ScanEvent.Read -> _state.update { it.copy(reads = (listOf(e.read) + it.reads).take(MAX_READS)) }
                is ScanEvent.Alert -> {
                    _state.update { it.copy(alerts = it.alerts + e.alert) }
                    signal.alert(e.alert.matches.maxOfOrNull { m -> m.priority.toInt() } ?: 0)
                }
                is ScanEvent.Sync -> {
                    // The sync renewed the device token: keep the new one (the old one lapses).
                    e.status.report.renewedDevice?.let { d -> store.saveRenewedDevice(d) }
                    _state.update {
                        val report = e.status.report
                        it.copy(
                            syncing = e.status.phase == SyncPhase.STARTED,
                            uploads = e.status.pending,
                            hotlists = if (e.status.phase == SyncPhase.STARTED) it.hotlists else report.lists,
                            message = refusals(report) ?: it.message,
                        )
                    }
                }
                is ScanEvent.Error -> {
                    if (e.error.kind == ErrorKind.UNAUTHORIZED) store.forgetDeviceToken()
                    _state.update { it.copy(message = describe(e.error)) }
                }
            }
        }
    }

    /** Pending uploads, hot list ages and frame counters for the status bar. */
    private fun pollStatus(s: Scanner) = viewModelScope.launch {
        while (isActive) {
            refreshStatus(s)
            delay(STATUS_INTERVAL_MS)
        }
    }

    private suspend fun refreshStatus(s: Scanner) {
        val status = io { runCatching { Triple(s.pendingUploads(), s.hotlistStatus(), s.frameStats()) } }
        status.onSuccess { (uploads, lists, stats) ->
            _state.update { it.copy(uploads = uploads, hotlists = lists, stats = stats) }
        }
    }

    /** Uploads on an interval; failures arrive as Sync/Error events and the rows are retried. */
    private fun periodicSync(s: Scanner) = viewModelScope.launch {
        while (isActive) {
            delay(_settings.value.syncIntervalSec * 1000L)
            try {
                s.syncNow()
            } catch (e: PlatewatchException) {
                // Reported through the events flow.
            }
        }
    }

    fun syncNow() {
        val s = scanner ?: return
        viewModelScope.launch {
            try {
                val r = s.syncNow()
                _state.update { it.copy(message = refusals(r) ?: summary(r)) }
                refreshStatus(s)
            } catch (e: PlatewatchException) {
                // Reported through the events flow.
            }
        }
    }

    // ---- sessions ----------------------------------------------------------------------------

    /**
     * Starts the scanning session: the FFI opens it on the server first (reason code checked
     * against the server's list, case number or justification required, audited there) and
     * only then on the device. If the server cannot be reached or refuses, no session starts.
     */
    fun startSession(reasonCode: String, caseNumber: String, justification: String, onBehalfOf: String) {
        val s = scanner ?: return
        val user = _state.value.user ?: return
        val case = caseNumber.trim().ifEmpty { null }
        val why = justification.trim().ifEmpty { null }
        val behalf = onBehalfOf.trim().ifEmpty { null }
        launchBusy {
            val info = try {
                s.startSession(SessionStart(user, reasonCode, case, why, behalf))
            } catch (e: PlatewatchException.Unauthorized) {
                store.forgetDeviceToken()
                throw e
            }
            _state.update { it.copy(session = info, frame = null, reads = emptyList(), screen = Screen.CAMERA) }
        }
    }

    /**
     * Ends the session on the device and on the server (a server that cannot record it is
     * reported through the events flow), then uploads.
     */
    fun endSession() {
        val s = scanner ?: return
        if (_state.value.session == null) return
        launchBusy {
            stopAnalysis()
            s.endSession()
            _state.update { it.copy(session = null, frame = null, screen = Screen.SESSION) }
            try {
                s.syncNow()
            } catch (e: PlatewatchException) {
                // Reported through the events flow.
            }
        }
    }

    // ---- camera ------------------------------------------------------------------------------

    /**
     * The ImageAnalysis use case for the camera screen: 1280x720 (16:9), YUV_420_888,
     * keep-only-latest, feeding the library's ScannerAnalyzer on the analysis thread.
     */
    fun analysisUseCase(): ImageAnalysis? {
        val s = scanner ?: return null
        analysis?.let { return it }
        val useCase = ImageAnalysis.Builder()
            .setResolutionSelector(
                ResolutionSelector.Builder()
                    .setAspectRatioStrategy(AspectRatioStrategy.RATIO_16_9_FALLBACK_AUTO_STRATEGY)
                    .setResolutionStrategy(
                        ResolutionStrategy(Size(1280, 720), ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER),
                    )
                    .build(),
            )
            .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
            .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
            .build()
        useCase.setAnalyzer(analysisExecutor, ScannerAnalyzer(s, location::latest) { e -> onAnalyzerError(e) })
        analysis = useCase
        return useCase
    }

    /** Called on the analysis thread for a frame the scanner refused. */
    private fun onAnalyzerError(e: PlatewatchException) {
        val text = describe(e)
        _state.update { if (it.message == text) it else it.copy(message = text) }
    }

    /** Detaches the analyzer and waits for a frame being pushed right now. */
    private suspend fun stopAnalysis() {
        analysis?.clearAnalyzer()
        analysis = null
        io { runCatching { analysisExecutor.submit(Runnable {}).get(2, TimeUnit.SECONDS) } }
    }

    fun cameraFailed(e: Exception) {
        _state.update { it.copy(message = "The camera could not be started: ${e.message ?: e.javaClass.simpleName}") }
    }

    // ---- alerts --------------------------------------------------------------------------------

    fun accept(alert: AlertEvent) = decide(alert) { it.acceptAlert(alert.alertId) }

    fun reject(alert: AlertEvent, reason: String) = decide(alert) { it.rejectAlert(alert.alertId, reason) }

    fun correct(alert: AlertEvent, plate: String) = decide(alert) { it.correctRead(alert.alertId, plate) }

    private fun decide(alert: AlertEvent, call: (Scanner) -> Unit) {
        val s = scanner ?: return
        viewModelScope.launch {
            try {
                io { call(s) }
                _state.update { st -> st.copy(alerts = st.alerts.filterNot { it.alertId == alert.alertId }) }
            } catch (e: PlatewatchException) {
                _state.update { it.copy(message = describe(e)) }
            }
        }
    }

    // ---- settings and messages ---------------------------------------------------------------

    fun openSettings() {
        if (_state.value.session == null) _state.update { it.copy(screen = Screen.SETTINGS) }
    }

    fun closeSettings() {
        if (_settings.value.problem() != null) return
        _state.update { it.copy(screen = if (scanner == null) Screen.LOGIN else Screen.SESSION) }
    }

    /**
     * Saves the settings. The scanner takes thresholds and reason codes at creation, so it is
     * re-created; a new server means signing in again.
     */
    fun saveSettings(new: Settings) {
        new.problem()?.let { problem ->
            _state.update { it.copy(message = problem) }
            return
        }
        if (_state.value.session != null) return
        val serverChanged = new.serverUrl.trim().trimEnd('/') != _settings.value.serverUrl
        store.save(new)
        _settings.value = store.load()
        launchBusy {
            val reg = registration
            if (scanner != null && reg != null && !serverChanged) {
                val device = reg.device
                openScanner(reg, if (device == null) pinnedKey else hotlistKey(reg.serverUrl, device.deviceToken))
                _state.update { it.copy(screen = Screen.SESSION) }
            } else {
                closeScanner()
                _state.update { UiState(screen = Screen.LOGIN) }
                loadRules()
            }
        }
    }

    fun dismissMessage() = _state.update { it.copy(message = null) }

    override fun onCleared() {
        location.stop()
        signal.release()
        analysis?.clearAnalyzer()
        analysis = null
        scannerJobs.forEach { it.cancel() }
        scannerJobs = emptyList()
        val s = scanner ?: run {
            analysisExecutor.shutdown()
            return
        }
        scanner = null
        val active = _state.value.session != null
        // Ending the session (on the device and the server) flushes the inference thread and
        // closing joins it: off the main thread, after the analysis thread has returned its
        // last frame.
        cleanupScope.launch {
            analysisExecutor.shutdown()
            analysisExecutor.awaitTermination(2, TimeUnit.SECONDS)
            if (active) {
                try {
                    s.endSession()
                } catch (e: PlatewatchException) {
                    // The scanner is going away; nothing to show it on.
                }
            }
            s.close()
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    private suspend fun <T> io(block: suspend CoroutineScope.() -> T): T = withContext(Dispatchers.IO, block)

    private fun launchBusy(block: suspend CoroutineScope.() -> Unit) = viewModelScope.launch {
        _state.update { it.copy(busy = true, message = null) }
        try {
            block()
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            _state.update { it.copy(message = describe(e)) }
        } finally {
            _state.update { it.copy(busy = false) }
        }
    }

    private companion object {
        const val MAX_READS = 5
        const val STATUS_INTERVAL_MS = 5_000L

        /** Messages from the library and the server never contain plate text. */
        fun describe(e: Throwable): String = e.message ?: e.javaClass.simpleName

        /** "Uploaded 3 encounter(s); hot lists: 1 updated, 2 current". */
        fun summary(r: SyncReport): String {
            val updated = r.hotlists.count { it.outcome is HotlistOutcome.Updated }
            val current = r.hotlists.count { it.outcome is HotlistOutcome.Unchanged }
            val failed = r.hotlists.count { it.outcome is HotlistOutcome.Failed }
            val stale = r.lists.count { it.stale }
            return "Uploaded ${r.stored + r.duplicates} encounter(s); hot lists: $updated updated, $current current" +
                (if (failed > 0) ", $failed not reachable" else "") +
                (if (stale > 0) ", $stale STALE" else "")
        }

        /** A warning naming every refused hot list (the device keeps its stored version), or null. */
        fun refusals(r: SyncReport): String? = r.hotlists
            .mapNotNull { h -> (h.outcome as? HotlistOutcome.Refused)?.let { "${h.list}: ${it.reason}" } }
            .takeIf { it.isNotEmpty() }
            ?.joinToString(prefix = "Hot list REFUSED, the stored version is kept — ", separator = "; ")

        fun describe(e: ScanError): String = "${e.kind.name.lowercase().replace('_', ' ')}: ${e.message}"
    }
}
