// CameraX adapter (Android only; not compiled by the JVM tests): an ImageAnalysis analyzer
// that pushes every ImageProxy into the scanner without copying it (the planes are direct
// buffers read in place) and closes it at once. Frames the scanner is too busy for are
// dropped inside push_frame_buffers, so the analyzer never blocks the camera.
package app.platewatch

import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import app.platewatch.ffi.GpsPosition
import app.platewatch.ffi.PlatewatchException
import app.platewatch.ffi.PushOutcome
import app.platewatch.ffi.Scanner

/** Pushes the open ImageProxy (YUV_420_888) into the scanner; its planes are read in place. */
fun Scanner.push(image: ImageProxy, timestampMs: Long, gps: GpsPosition?): PushOutcome =
    image.planes.let { p ->
        BufferFrames.pushYuv420(
            this, image.width, image.height,
            Plane(p[0].buffer, p[0].rowStride, p[0].pixelStride),
            Plane(p[1].buffer, p[1].rowStride, p[1].pixelStride),
            Plane(p[2].buffer, p[2].rowStride, p[2].pixelStride),
            image.imageInfo.rotationDegrees, timestampMs, gps,
        )
    }

/** Use with `ImageAnalysis.Builder().setOutputImageFormat(OUTPUT_IMAGE_FORMAT_YUV_420_888)`. */
class ScannerAnalyzer(
    private val scanner: Scanner,
    private val location: () -> GpsPosition?,
    private val onError: (PlatewatchException) -> Unit,
) : ImageAnalysis.Analyzer {
    override fun analyze(image: ImageProxy) {
        image.use {
            try {
                val outcome = scanner.push(it, System.currentTimeMillis(), location())
                if (outcome == PushOutcome.DROPPED) return
            } catch (e: PlatewatchException) {
                onError(e)
            }
        }
    }
}
