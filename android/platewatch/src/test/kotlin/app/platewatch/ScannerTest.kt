// JVM tests of the Kotlin layer against the host build of libplatewatch_ffi (through JNA):
// a real scan of rendered camera frames pushed from strided plane buffers, alerts through the
// listener and the Flow, accept/reject, sessions with reason codes, error mapping, close().
// Run by run-jvm-tests.sh (JUnit 4); Rust tests cover the engine itself.
package app.platewatch

import app.platewatch.ffi.AlertEvent
import app.platewatch.ffi.BufferFrame
import app.platewatch.ffi.BufferPixels
import app.platewatch.ffi.BufferPlane
import app.platewatch.ffi.CameraFrame
import app.platewatch.ffi.FramePixels
import app.platewatch.ffi.FrameResult
import app.platewatch.ffi.GpsPosition
import app.platewatch.ffi.MatchKind
import app.platewatch.ffi.ModelSource
import app.platewatch.ffi.PlaneData
import app.platewatch.ffi.PlateReadEvent
import app.platewatch.ffi.PlatewatchException
import app.platewatch.ffi.PushOutcome
import app.platewatch.ffi.ScanError
import app.platewatch.ffi.ScanListener
import app.platewatch.ffi.Scanner
import app.platewatch.ffi.ScannerConfig
import app.platewatch.ffi.SessionStart
import app.platewatch.ffi.SyncPhase
import app.platewatch.ffi.SyncStatus
import app.platewatch.ffi.liveScanners
import java.io.File
import java.nio.ByteBuffer
import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import javax.imageio.ImageIO
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test
import org.junit.runner.JUnitCore

private val repo = File(System.getProperty("platewatch.repo", "../.."))
private val fixtures = File(System.getProperty("platewatch.fixtures", "build/fixtures"))
private val platewatchBin = File(System.getProperty("platewatch.bin", "target/debug/platewatch"))

fun freePort(): Int = java.net.ServerSocket(0).use { it.localPort }

/** A camera image as CameraX delivers it: padded luma rows, interleaved VU chroma. */
/** RSS after a full GC, so that Java heap churn does not count as growth (the heap is capped
 *  by run-jvm-tests.sh's -Xmx; what this watches is the native side). */
fun settledRssKb(): Long {
    repeat(2) { System.gc(); Thread.sleep(50) }
    return rssKb()
}

/** RSS minus the committed Java heap, in KB, the median of three readings: roughly the native
 *  side (Rust, JNA), without the heap's and malloc's own ups and downs. */
fun nativeKb(): Long = List(3) { settledRssKb() - Runtime.getRuntime().totalMemory() / 1024 }.sorted()[1]

/** Resident set size of this process (Linux), in KB. */
fun rssKb(): Long = File("/proc/self/status").readLines()
    .first { it.startsWith("VmRSS:") }.split(Regex("\\s+"))[1].toLong()

class YuvImage(val width: Int, val height: Int, val y: Plane, val u: Plane, val v: Plane)

fun loadYuv(file: File): YuvImage {
    val img = ImageIO.read(file)
    val (w, h) = img.width to img.height
    val yStride = w + 64
    val y = ByteBuffer.allocateDirect(yStride * h)
    for (r in 0 until h) for (c in 0 until w) {
        val p = img.getRGB(c, r)
        val (red, green, blue) = Triple((p shr 16) and 255, (p shr 8) and 255, p and 255)
        y.put(r * yStride + c, ((77 * red + 150 * green + 29 * blue + 128) shr 8).toByte())
    }
    val cStride = ((w + 1) / 2) * 2 + 32
    val vu = ByteBuffer.allocateDirect(cStride * ((h + 1) / 2))
    for (i in 0 until vu.capacity()) vu.put(i, 128.toByte())
    // As on most devices: V and U planes are views one byte apart into one buffer.
    val u = vu.duplicate().position(1).slice()
    return YuvImage(w, h, Plane(y, yStride, 1), Plane(u, cStride, 2), Plane(vu, cStride, 2))
}

fun loadBgra(file: File): Pair<ByteBuffer, Int> {
    val img = ImageIO.read(file)
    val stride = img.width * 4 + 64
    val b = ByteBuffer.allocateDirect(stride * img.height)
    for (r in 0 until img.height) for (c in 0 until img.width) {
        val p = img.getRGB(c, r)
        val o = r * stride + c * 4
        b.put(o, (p and 255).toByte()); b.put(o + 1, ((p shr 8) and 255).toByte())
        b.put(o + 2, ((p shr 16) and 255).toByte()); b.put(o + 3, 255.toByte())
    }
    return b to stride
}

class Recorder : ScanListener {
    val frames = CopyOnWriteArrayList<FrameResult>()
    val reads = CopyOnWriteArrayList<PlateReadEvent>()
    val alerts = CopyOnWriteArrayList<AlertEvent>()
    val syncs = CopyOnWriteArrayList<SyncStatus>()
    val errors = CopyOnWriteArrayList<ScanError>()
    override fun onFrame(frame: FrameResult) { frames.add(frame) }
    override fun onRead(read: PlateReadEvent) { reads.add(read) }
    override fun onAlert(alert: AlertEvent) { alerts.add(alert) }
    override fun onSync(status: SyncStatus) { syncs.add(status) }
    override fun onError(error: ScanError) { errors.add(error) }
}

fun waitFor(what: String, seconds: Long = 20, cond: () -> Boolean) {
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds)
    while (!cond()) {
        if (System.nanoTime() > deadline) fail("timed out waiting for $what")
        Thread.sleep(5)
    }
}

class ScannerTest {
    private lateinit var dir: File
    private val plate by lazy { File(fixtures, "plate.txt").readText().trim() }
    private val frameFiles by lazy {
        fixtures.listFiles { f -> f.name.endsWith(".png") }!!.sortedBy { it.name }
    }

    @Before fun setUp() { dir = Files.createTempDirectory("platewatch-jvm").toFile() }
    @After fun tearDown() { dir.deleteRecursively() }

    private fun config(serverUrl: String? = null, reader: ModelSource? = null) = ScannerConfig(
        detector = ModelSource.File(File(repo, "models/plate_detector.onnx").path),
        reader = reader ?: ModelSource.File(File(repo, "models/plate_reader.onnx").path),
        refiner = ModelSource.File(File(repo, "models/plate_refiner.onnx").path),
        storePath = File(dir, "device.db").path,
        deviceId = "jvm-test-phone",
        reasonCodes = listOf("patrol", "investigation"),
        serverUrl = serverUrl,
        deviceToken = serverUrl?.let { "pwd_jvm" },
    )

    private fun session(reason: String = "patrol", case: String? = "C-2026-17") =
        SessionStart(user = "ofc.lee", reasonCode = reason, caseNumber = case, onBehalfOf = "det.ray")

    private fun pushAll(scanner: Scanner, frame: CameraFrame) = pushUntilAccepted { scanner.pushFrame(frame) }

    private fun pushUntilAccepted(push: () -> PushOutcome) {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        while (push() == PushOutcome.DROPPED) {
            if (System.nanoTime() > deadline) fail("the inference thread never took a frame")
            Thread.sleep(2)
        }
    }

    private fun gps(at: Long) = GpsPosition(37.7749, -122.4194, 5.0f, at)

    /** Pushes the rendered pass as strided YUV planes in direct buffers (read in place, as
     *  CameraX planes are), then ends its track. */
    private fun scanPass(scanner: Scanner) {
        val t0 = 1_767_000_000_000L
        frameFiles.forEachIndexed { i, f ->
            val img = loadYuv(f)
            val ts = t0 + 33L * i
            pushUntilAccepted {
                BufferFrames.pushYuv420(scanner, img.width, img.height, img.y, img.u, img.v, 0, ts, gps(ts))
            }
        }
        scanner.flush()
    }

    @Test fun scanFromStridedPlanesRaisesAnAlertThroughTheListenerAndCanBeAccepted() {
        Scanner(config()).use { scanner ->
            val rec = Recorder()
            scanner.subscribe(rec).use {
                val imported = scanner.importHotlist("stolen", 1, "Plate;List;Priority\n$plate;stolen vehicle;80\n".toByteArray())
                assertEquals(1uL, imported.entries)
                val info = runBlocking { scanner.startSession(session()) }
                assertEquals("patrol", info.reasonCode)
                assertEquals("ofc.lee", scanner.currentSession()?.user)
                scanPass(scanner)
                waitFor("an alert") { rec.alerts.isNotEmpty() }
                val alert = rec.alerts.first()
                assertEquals(plate, alert.read.plate)
                assertTrue(alert.read.stored)
                assertTrue("crop is a PNG", alert.cropPng.size > 8 && alert.cropPng[1] == 'P'.code.toByte())
                val m = alert.matches.first()
                assertEquals("stolen", m.list)
                assertEquals(MatchKind.EXACT, m.kind)
                assertEquals("stolen_vehicle", m.category)
                assertEquals(80.toUByte(), m.priority)
                assertFalse(m.stale)
                assertTrue("overlay frames delivered", rec.frames.isNotEmpty())
                assertEquals(frameFiles.size.toULong(), scanner.frameStats().processed)

                val before = scanner.pendingUploads()
                assertEquals(1L to 0L, before.pending to before.due)
                scanner.acceptAlert(alert.alertId)
                assertEquals(1L, scanner.pendingUploads().due)
                scanner.rejectAlert(alert.alertId, "wrong vehicle make")
                scanner.correctRead(alert.alertId, "abc-123")
                val end = runBlocking { scanner.endSession() }
                assertEquals(info.id, end.id)
                assertFalse("no server configured", end.endedOnServer)
                assertEquals(null, scanner.currentSession())
            }
        }
    }

    @Test fun alertsFlowDeliversAndClosesItsSubscription() = runBlocking {
        Scanner(config()).use { scanner ->
            scanner.importHotlist("wanted", 3, "Plate;List;Priority\n$plate;wanted;95\n".toByteArray())
            scanner.startSession(session(reason = "investigation"))
            val first = async { withTimeout(30_000) { scanner.alerts().first() } }
            // Wait until the collector has subscribed before scanning.
            repeat(50) { yield(); Thread.sleep(5) }
            kotlinx.coroutines.withContext(kotlinx.coroutines.Dispatchers.IO) { scanPass(scanner) }
            val alert = first.await()
            assertEquals(plate, alert.read.plate)
            assertEquals("wanted", alert.matches.first().list)
        }
    }

    @Test fun bgraFramesAreReadToo() {
        Scanner(config()).use { scanner ->
            val rec = Recorder()
            scanner.subscribe(rec).use {
                runBlocking { scanner.startSession(session()) }
                val t0 = 1_767_000_000_000L
                frameFiles.forEachIndexed { i, f ->
                    val (buf, stride) = loadBgra(f)
                    val ts = t0 + 33L * i
                    pushAll(scanner, Frames.bgra(1280, 720, buf, stride, 0, ts, gps(ts)))
                }
                scanner.flush()
                waitFor("a read") { rec.reads.isNotEmpty() }
                assertEquals(plate, rec.reads.first().plate)
                assertTrue(rec.alerts.isEmpty())
            }
        }
    }

    @Test fun framesPushedWhileBusyAreDroppedAndCounted() {
        Scanner(config()).use { scanner ->
            runBlocking { scanner.startSession(session()) }
            val img = loadYuv(frameFiles.first())
            // Both push paths side by side in one run: byte arrays (copied by the FFI) and
            // direct buffers read in place (what the CameraX analyzer uses).
            val n = 200
            // Warm up the JIT and the FFI paths first.
            repeat(30) {
                BufferFrames.pushYuv420(scanner, img.width, img.height, img.y, img.u, img.v, 90, 1_766_000_000_000L + it)
            }
            val warm = scanner.frameStats()
            val copied = LongArray(n)
            val inPlace = LongArray(n)
            var accepted = 0
            for (i in 0 until n) {
                val ts = 1_767_000_000_000L + 2L * i
                var t = System.nanoTime()
                val frame = Frames.yuv420(img.width, img.height, img.y, img.u, img.v, 90, ts)
                if (scanner.pushFrame(frame) == PushOutcome.ACCEPTED) accepted++
                copied[i] = System.nanoTime() - t
                t = System.nanoTime()
                if (BufferFrames.pushYuv420(scanner, img.width, img.height, img.y, img.u, img.v, 90, ts + 1) ==
                    PushOutcome.ACCEPTED) accepted++
                inPlace[i] = System.nanoTime() - t
            }
            copied.sort(); inPlace.sort()
            val stats = scanner.frameStats()
            assertEquals((2 * n).toULong(), stats.pushed - warm.pushed)
            assertEquals((2 * n - accepted).toULong(), stats.dropped - warm.dropped)
            assertTrue("some frames dropped while busy", stats.dropped > 0uL)
            println(("kotlin push 1280x720 YUV: byte arrays median %.3f ms p95 %.3f ms p99 %.3f ms | direct buffers " +
                "median %.3f ms p95 %.3f ms p99 %.3f ms | accepted %d, dropped %d")
                .format(copied[n / 2] / 1e6, copied[n * 95 / 100] / 1e6, copied[n * 99 / 100] / 1e6,
                    inPlace[n / 2] / 1e6, inPlace[n * 95 / 100] / 1e6, inPlace[n * 99 / 100] / 1e6,
                    accepted, (stats.dropped - warm.dropped).toLong()))
        }
    }

    @Test fun tenThousandPushedFramesDoNotGrowMemory() {
        Scanner(config()).use { scanner ->
            scanner.importHotlist("stolen", 1, "Plate;List;Priority\n$plate;stolen vehicle;80\n".toByteArray())
            runBlocking { scanner.startSession(session()) }
            val imgs = frameFiles.map { loadYuv(it) }
            var rssAfterWarmUp = 0L
            var nativeAfterWarmUp = 0L
            val t0 = 1_767_000_000_000L
            val start = System.nanoTime()
            for (i in 0 until 10_000) {
                val img = imgs[i % imgs.size]
                BufferFrames.pushYuv420(scanner, img.width, img.height, img.y, img.u, img.v, 0, t0 + 5L * i, gps(t0 + 5L * i))
                if (i % 4 == 0) Thread.sleep(0, 500_000)
                if (i == 1_999) { scanner.flush(); rssAfterWarmUp = settledRssKb(); nativeAfterWarmUp = nativeKb() }
            }
            scanner.flush()
            val seconds = (System.nanoTime() - start) / 1e9
            val rssEnd = settledRssKb()
            val nativeEnd = nativeKb()
            val stats = scanner.frameStats()
            assertEquals(10_000uL, stats.pushed)
            assertEquals(10_000uL, stats.processed + stats.dropped + stats.failed)
            assertTrue("frames were processed", stats.processed > 10uL)
            val growthMb = (nativeEnd - nativeAfterWarmUp) / 1024.0
            println(("kotlin 10,000 pushed frames in %.1f s: processed %d, dropped %d; RSS %.1f MB after 2,000, %.1f MB " +
                "after 10,000; native (RSS - Java heap) %.1f -> %.1f MB (growth %.1f MB)")
                .format(seconds, stats.processed.toLong(), stats.dropped.toLong(), rssAfterWarmUp / 1024.0, rssEnd / 1024.0,
                    nativeAfterWarmUp / 1024.0, nativeEnd / 1024.0, growthMb))
            assertTrue("memory grew by %.1f MB over 8,000 frames".format(growthMb), growthMb < 48.0)
        }
    }

    @Test fun errorsMapToPlatewatchExceptions() {
        Scanner(config()).use { scanner ->
            val img = loadYuv(frameFiles.first())
            val frame = Frames.yuv420(img.width, img.height, img.y, img.u, img.v, 0, 1L)
            // No session yet.
            expect<PlatewatchException.InvalidInput> { scanner.pushFrame(frame) }
            // The reason code must be one of the configured ones; a case or justification is needed.
            expect<PlatewatchException.InvalidInput> { runBlocking { scanner.startSession(session(reason = "curiosity")) } }
            expect<PlatewatchException.InvalidInput> { runBlocking { scanner.startSession(session(case = null)) } }
            runBlocking { scanner.startSession(session()) }
            expect<PlatewatchException.InvalidInput> { runBlocking { scanner.startSession(session()) } }
            // A row stride shorter than a row.
            val bad = frame.copy(pixels = FramePixels.Yuv420(
                PlaneData(Frames.bytes(img.y.buffer), 100u, 1u),
                PlaneData(Frames.bytes(img.u.buffer), img.u.rowStride.toUInt(), 2u),
                PlaneData(Frames.bytes(img.v.buffer), img.v.rowStride.toUInt(), 2u)))
            expect<PlatewatchException.InvalidInput> { scanner.pushFrame(bad) }
            expect<PlatewatchException.InvalidInput> { scanner.pushFrame(frame.copy(rotationDegrees = 45)) }
            // The in-place path checks the same, and never reads a null or too-short plane.
            expect<PlatewatchException.InvalidInput> {
                BufferFrames.pushYuv420(scanner, img.width, img.height, Plane(img.y.buffer, 100, 1), img.u, img.v, 0, 1L)
            }
            expect<PlatewatchException.InvalidInput> {
                scanner.pushFrameBuffers(BufferFrame(1280u, 720u, 0, 1L, BufferPixels.Gray(BufferPlane(0uL, 921_600uL, 1280u, 1u)), null))
            }
            val small = ByteBuffer.allocateDirect(1280 * 10)
            expect<PlatewatchException.InvalidInput> {
                BufferFrames.pushBgra(scanner, 1280, 720, small, 1280 * 4, 0, 1L)
            }
            expect<PlatewatchException.InvalidInput> { scanner.acceptAlert("not-an-id") }
            expect<PlatewatchException.InvalidInput> { scanner.rejectAlert("00000000-0000-4000-8000-000000000000", "x") }
            // No server configured.
            expect<PlatewatchException.InvalidInput> { runBlocking { scanner.syncNow() } }
        }
        expect<PlatewatchException.Model> { Scanner(config(reader = ModelSource.Bytes("not onnx".toByteArray()))) }
        expect<PlatewatchException.Model> { Scanner(config(reader = ModelSource.File("/nonexistent/reader.onnx"))) }
        expect<PlatewatchException.Storage> {
            Scanner(config().copy(storePath = File(dir, "missing/dir/device.db").path))
        }
    }

    @Test fun syncMapsServerAnswersToErrorsAndReportsStatus() {
        // A read recorded by a scanner without a server; scanners with one on the same store
        // upload it. With a server, a session is opened on the server before scanning.
        Scanner(config()).use { scanner ->
            runBlocking { scanner.startSession(session()) }
            scanPass(scanner)
            waitFor("a stored read") { scanner.pendingUploads().due == 1L }
            runBlocking { scanner.endSession() }
        }
        // The real server (`platewatch serve` on loopback, its own SQLite file), which does not
        // know this device's token: 401 for the session and for the upload.
        val port = freePort()
        val server = ProcessBuilder(
            platewatchBin.path, "serve",
            "--listen", "127.0.0.1:$port",
            "--database-url", "sqlite://" + File(dir, "server.db").path,
        ).redirectErrorStream(true).redirectOutput(File(dir, "server.log")).start()
        try {
            waitFor("the server to listen", seconds = 60) {
                check(server.isAlive) { "platewatch serve exited: " + File(dir, "server.log").readText() }
                runCatching { java.net.Socket("127.0.0.1", port).close() }.isSuccess
            }
            Scanner(config(serverUrl = "http://127.0.0.1:$port")).use { scanner ->
                val rec = Recorder()
                scanner.subscribe(rec).use {
                    expect<PlatewatchException.Unauthorized> { runBlocking { scanner.startSession(session()) } }
                    assertEquals(null, scanner.currentSession())
                    assertEquals(1L, scanner.pendingUploads().due)
                    expect<PlatewatchException.Unauthorized> { runBlocking { scanner.syncNow() } }
                    assertEquals("rows stay queued", 1L, scanner.pendingUploads().pending)
                    waitFor("a sync status") { rec.syncs.any { it.phase == SyncPhase.FAILED } }
                }
            }
        } finally {
            server.destroy()
            server.waitFor(10, TimeUnit.SECONDS)
        }
        // Nothing listening: network errors, and no session without the server. The row waits
        // out its backoff after the 401; with a hot list key pinned (the ed25519 base point)
        // the hot list sync still tries the server.
        val closed = freePort()
        val pinned = config(serverUrl = "http://127.0.0.1:$closed")
            .copy(hotlistKey = "WGZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=")
        Scanner(pinned).use { scanner ->
            expect<PlatewatchException.Network> { runBlocking { scanner.startSession(session()) } }
            expect<PlatewatchException.Network> { runBlocking { scanner.syncNow() } }
            assertEquals(1L, scanner.pendingUploads().pending)
        }
    }

    @Test fun closeReleasesTheScannerAndItsSubscriptions() {
        val before = liveScanners()
        val scanner = Scanner(config())
        val handle = scanner.subscribe(Recorder())
        assertEquals(before + 1uL, liveScanners())
        assertTrue(handle.isActive())
        scanner.close()
        assertEquals(before, liveScanners())
        assertFalse("subscription ended with the scanner", handle.isActive())
        handle.close()
        // The Kotlin object is gone too, and the store can be opened again at once.
        expect<IllegalStateException> { scanner.frameStats() }
        Scanner(config()).use { assertNotNull(it.frameStats()) }
    }
}

inline fun <reified E : Throwable> expect(block: () -> Unit) {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return
        throw AssertionError("expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

/** Runs the tests and ends with a `N passed, M failed` line; exits non-zero on failure. */
fun main() {
    val result = JUnitCore().run(ScannerTest::class.java)
    for (f in result.failures) {
        println("FAILED ${f.testHeader}: ${f.message}")
        println(f.trace)
    }
    val failed = result.failureCount
    println("kotlin-jvm: ${result.runCount - failed} passed, $failed failed")
    kotlin.system.exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
