// The idiomatic Kotlin layer over the generated bindings (package app.platewatch.ffi): a Flow of
// scanner events and of alerts, and camera planes (ByteBuffers, as ImageProxy gives them)
// pushed into the scanner without a copy. Plain JVM code, tested on the JVM by run-jvm-tests.sh.
package app.platewatch

import app.platewatch.ffi.AlertEvent
import app.platewatch.ffi.BufferFrame
import app.platewatch.ffi.BufferPixels
import app.platewatch.ffi.BufferPlane
import app.platewatch.ffi.CameraFrame
import app.platewatch.ffi.FramePixels
import app.platewatch.ffi.FrameResult
import app.platewatch.ffi.GpsPosition
import app.platewatch.ffi.PlaneData
import app.platewatch.ffi.PlateReadEvent
import app.platewatch.ffi.PushOutcome
import app.platewatch.ffi.ScanError
import app.platewatch.ffi.ScanListener
import app.platewatch.ffi.Scanner
import app.platewatch.ffi.SyncStatus
import com.sun.jna.Native
import com.sun.jna.Pointer
import java.nio.ByteBuffer
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.map

/** Everything a [Scanner] reports, as one type for a `when`. */
sealed interface ScanEvent {
    data class Frame(val frame: FrameResult) : ScanEvent
    data class Read(val read: PlateReadEvent) : ScanEvent
    data class Alert(val alert: AlertEvent) : ScanEvent
    data class Sync(val status: SyncStatus) : ScanEvent
    data class Error(val error: ScanError) : ScanEvent
}

/**
 * The scanner's events while the flow is collected: collecting subscribes, cancelling the
 * collector closes the subscription (its TaskHandle). Frame results are conflated by the
 * scanner when the collector is slow; alerts are not.
 */
fun Scanner.events(): Flow<ScanEvent> = callbackFlow {
    val listener = object : ScanListener {
        override fun onFrame(frame: FrameResult) { trySend(ScanEvent.Frame(frame)) }
        override fun onRead(read: PlateReadEvent) { trySend(ScanEvent.Read(read)) }
        override fun onAlert(alert: AlertEvent) { trySend(ScanEvent.Alert(alert)) }
        override fun onSync(status: SyncStatus) { trySend(ScanEvent.Sync(status)) }
        override fun onError(error: ScanError) { trySend(ScanEvent.Error(error)) }
    }
    val handle = subscribe(listener)
    awaitClose { handle.close() }
}

/** Hot list alerts as they happen. */
fun Scanner.alerts(): Flow<AlertEvent> =
    events().filterIsInstance<ScanEvent.Alert>().map { it.alert }

/** One image plane as the camera gives it: a buffer with its row and pixel strides. */
class Plane(val buffer: ByteBuffer, val rowStride: Int, val pixelStride: Int)

/** Builds [CameraFrame]s from platform buffers; the one copy into the FFI happens here. */
object Frames {
    /** Copies the buffer's remaining bytes (without moving its position). */
    fun bytes(buffer: ByteBuffer): ByteArray {
        val dup = buffer.duplicate()
        val out = ByteArray(dup.remaining())
        dup.get(out)
        return out
    }

    private fun plane(p: Plane) = PlaneData(bytes(p.buffer), p.rowStride.toUInt(), p.pixelStride.toUInt())

    /** A `YUV_420_888` image (CameraX ImageProxy planes 0, 1, 2). */
    fun yuv420(
        width: Int,
        height: Int,
        y: Plane,
        u: Plane,
        v: Plane,
        rotationDegrees: Int,
        timestampMs: Long,
        gps: GpsPosition? = null,
    ): CameraFrame = CameraFrame(
        width.toUInt(), height.toUInt(), rotationDegrees, timestampMs,
        FramePixels.Yuv420(plane(y), plane(u), plane(v)), gps,
    )

    /** A 32BGRA buffer (e.g. a CVPixelBuffer's base address, or a converted bitmap). */
    fun bgra(
        width: Int,
        height: Int,
        buffer: ByteBuffer,
        rowStride: Int,
        rotationDegrees: Int,
        timestampMs: Long,
        gps: GpsPosition? = null,
    ): CameraFrame = CameraFrame(
        width.toUInt(), height.toUInt(), rotationDegrees, timestampMs,
        FramePixels.Bgra(bytes(buffer), rowStride.toUInt()), gps,
    )
}

/**
 * Zero-copy frame push: the scanner reads direct buffers (CameraX `ImageProxy` planes) in place
 * during the call, copying only the luma rows when it accepts the frame and nothing when it is
 * busy. Heap (non-direct) buffers have no native address and go through the copying
 * [Frames] path instead, with the same result.
 */
object BufferFrames {
    /** The plane as address + length of its remaining bytes (null for a heap buffer). */
    private fun plane(p: Plane): BufferPlane? {
        val b = p.buffer
        if (!b.isDirect) return null
        val base = Pointer.nativeValue(Native.getDirectBufferPointer(b) ?: return null)
        return BufferPlane(
            (base + b.position()).toULong(), b.remaining().toULong(),
            p.rowStride.toUInt(), p.pixelStride.toUInt(),
        )
    }

    /** Keeps the buffers strongly reachable until the native call has returned. */
    @Volatile private var fence: Any? = null
    private fun keepAlive(vararg refs: Any) { fence = refs; fence = null }

    fun pushYuv420(
        scanner: Scanner,
        width: Int,
        height: Int,
        y: Plane,
        u: Plane,
        v: Plane,
        rotationDegrees: Int,
        timestampMs: Long,
        gps: GpsPosition? = null,
    ): PushOutcome {
        val (py, pu, pv) = Triple(plane(y), plane(u), plane(v))
        if (py == null || pu == null || pv == null) {
            return scanner.pushFrame(Frames.yuv420(width, height, y, u, v, rotationDegrees, timestampMs, gps))
        }
        try {
            return scanner.pushFrameBuffers(BufferFrame(
                width.toUInt(), height.toUInt(), rotationDegrees, timestampMs,
                BufferPixels.Yuv420(py, pu, pv), gps,
            ))
        } finally {
            keepAlive(y.buffer, u.buffer, v.buffer)
        }
    }

    fun pushBgra(
        scanner: Scanner,
        width: Int,
        height: Int,
        buffer: ByteBuffer,
        rowStride: Int,
        rotationDegrees: Int,
        timestampMs: Long,
        gps: GpsPosition? = null,
    ): PushOutcome {
        val p = plane(Plane(buffer, rowStride, 4))
            ?: return scanner.pushFrame(Frames.bgra(width, height, buffer, rowStride, rotationDegrees, timestampMs, gps))
        try {
            return scanner.pushFrameBuffers(BufferFrame(
                width.toUInt(), height.toUInt(), rotationDegrees, timestampMs, BufferPixels.Bgra(p), gps,
            ))
        } finally {
            keepAlive(buffer)
        }
    }
}
