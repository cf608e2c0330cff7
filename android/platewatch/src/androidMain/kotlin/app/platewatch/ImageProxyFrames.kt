// CameraX adapter (Android only; not compiled by the JVM tests): an ImageAnalysis analyzer
// that pushes every ImageProxy into the scanner and closes it at once. Frames the scanner
// is too busy for are dropped inside push_frame, so the analyzer never blocks the camera.
package app.platewatch

import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import app.platewatch.ffi.GpsPosition
import app.platewatch.ffi.PlatewatchException
import app.platewatch.ffi.PushOutcome
import app.platewatch.ffi.Scanner

/** The ImageProxy (YUV_420_888) as a CameraFrame. */
fun ImageProxy.toCameraFrame(timestampMs: Long, gps: GpsPosition?) = planes.let { p ->
    Frames.yuv420(
        width, height,
        Plane(p[0].buffer, p[0].rowStride, p[0].pixelStride),
        Plane(p[1].buffer, p[1].rowStride, p[1].pixelStride),
        Plane(p[2].buffer, p[2].rowStride, p[2].pixelStride),
        imageInfo.rotationDegrees, timestampMs, gps,
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
                val outcome = scanner.pushFrame(it.toCameraFrame(System.currentTimeMillis(), location()))
                if (outcome == PushOutcome.DROPPED) return
            } catch (e: PlatewatchException) {
                onError(e)
            }
        }
    }
}
