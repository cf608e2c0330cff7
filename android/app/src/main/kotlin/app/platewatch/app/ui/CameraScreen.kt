// Camera screen: CameraX preview plus the ViewModel's ImageAnalysis (ScannerAnalyzer), a live overlay of plate boxes and reads, status.
package app.platewatch.app.ui

import android.Manifest
import android.content.Context
import android.content.pm.PackageManager
import android.view.Surface
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.Preview
import androidx.camera.core.UseCase
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.compose.foundation.Canvas
import androidx.compose.foundation.background
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.DisposableEffect
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.geometry.Size
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.drawscope.Stroke
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.platform.LocalView
import androidx.compose.ui.text.TextStyle
import androidx.compose.ui.text.drawText
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.text.rememberTextMeasurer
import androidx.compose.ui.unit.dp
import androidx.compose.ui.unit.sp
import androidx.compose.ui.viewinterop.AndroidView
import androidx.core.content.ContextCompat
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.compose.LocalLifecycleOwner
import app.platewatch.app.PlatewatchViewModel
import app.platewatch.app.UiState
import app.platewatch.ffi.FrameResult
import app.platewatch.ffi.PlateReadEvent
import kotlin.math.max

@Composable
fun CameraScreen(vm: PlatewatchViewModel, state: UiState, onSync: () -> Unit, onEnd: () -> Unit) {
    val context = LocalContext.current
    var cameraGranted by remember { mutableStateOf(granted(context, Manifest.permission.CAMERA)) }
    val permissions = rememberLauncherForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) { result ->
        cameraGranted = result[Manifest.permission.CAMERA] == true || granted(context, Manifest.permission.CAMERA)
        vm.location.start()
    }
    LaunchedEffect(Unit) {
        if (!cameraGranted || !granted(context, Manifest.permission.ACCESS_FINE_LOCATION)) {
            // Android 12+ grants fine location only when coarse is asked for in the same request.
            permissions.launch(
                arrayOf(
                    Manifest.permission.CAMERA,
                    Manifest.permission.ACCESS_FINE_LOCATION,
                    Manifest.permission.ACCESS_COARSE_LOCATION,
                ),
            )
        } else {
            vm.location.start()
        }
    }
    val view = LocalView.current
    DisposableEffect(Unit) {
        view.keepScreenOn = true
        onDispose {
            view.keepScreenOn = false
            vm.location.stop()
        }
    }

    Box(Modifier.fillMaxSize().background(Color.Black)) {
        if (cameraGranted) {
            CameraPreview(vm, LocalLifecycleOwner.current)
        } else {
            Text("Scanning needs the camera permission.", Modifier.align(Alignment.Center), color = Color.White)
        }
        PlateOverlay(state.frame, Modifier.fillMaxSize())
        Column(Modifier.align(Alignment.TopStart).padding(8.dp), verticalArrangement = Arrangement.spacedBy(4.dp)) {
            StatusBar(state)
            state.session?.let { Text("Session: ${it.reasonCode}", color = Color.White) }
        }
        RecentReads(state.reads, Modifier.align(Alignment.BottomStart).padding(8.dp))
        Row(
            Modifier.align(Alignment.BottomEnd).padding(8.dp),
            horizontalArrangement = Arrangement.spacedBy(8.dp),
        ) {
            OutlinedButton(onClick = onSync, enabled = !state.syncing) { Text("Upload", color = Color.White) }
            Button(onClick = onEnd, enabled = !state.busy) { Text("End session") }
        }
    }
}

private fun granted(context: Context, permission: String) =
    ContextCompat.checkSelfPermission(context, permission) == PackageManager.PERMISSION_GRANTED

/** Binds the preview and the ViewModel's analysis use case to the screen's lifecycle. */
@Composable
private fun CameraPreview(vm: PlatewatchViewModel, lifecycleOwner: LifecycleOwner) {
    val context = LocalContext.current
    // The activity is re-created on rotation: frames are rotated upright for the new display.
    val rotation = LocalView.current.display?.rotation ?: Surface.ROTATION_0
    val previewView = remember { PreviewView(context).apply { scaleType = PreviewView.ScaleType.FILL_CENTER } }
    DisposableEffect(lifecycleOwner) {
        val analysis = vm.analysisUseCase()?.also { it.targetRotation = rotation }
        val preview = Preview.Builder()
            .setTargetRotation(rotation)
            .setResolutionSelector(
                ResolutionSelector.Builder()
                    .setAspectRatioStrategy(AspectRatioStrategy.RATIO_16_9_FALLBACK_AUTO_STRATEGY)
                    .build(),
            )
            .build()
        preview.setSurfaceProvider(previewView.surfaceProvider)
        val useCases: Array<UseCase> = listOfNotNull(preview, analysis).toTypedArray()
        val future = ProcessCameraProvider.getInstance(context)
        var provider: ProcessCameraProvider? = null
        var disposed = false
        future.addListener({
            if (disposed) return@addListener
            try {
                val p = future.get()
                p.bindToLifecycle(lifecycleOwner, CameraSelector.DEFAULT_BACK_CAMERA, *useCases)
                provider = p
            } catch (e: Exception) {
                vm.cameraFailed(e)
            }
        }, ContextCompat.getMainExecutor(context))
        onDispose {
            disposed = true
            provider?.unbind(*useCases)
        }
    }
    AndroidView(factory = { previewView }, modifier = Modifier.fillMaxSize())
}

/**
 * Plate boxes and per-frame reads over the preview. Boxes are in upright frame pixels; the
 * preview fills the view and crops (FILL_CENTER), so the same scale and offset apply.
 */
@Composable
private fun PlateOverlay(frame: FrameResult?, modifier: Modifier) {
    val measurer = rememberTextMeasurer()
    val label = TextStyle(
        color = Color.Black,
        background = Color(0xFF69F0AE),
        fontSize = 16.sp,
        fontFamily = FontFamily.Monospace,
    )
    Canvas(modifier) {
        val f = frame ?: return@Canvas
        val fw = f.width.toFloat()
        val fh = f.height.toFloat()
        if (fw <= 0f || fh <= 0f) return@Canvas
        val scale = max(size.width / fw, size.height / fh)
        val dx = (size.width - fw * scale) / 2f
        val dy = (size.height - fh * scale) / 2f
        for (d in f.detections) {
            val topLeft = Offset(dx + d.bbox.x * scale, dy + d.bbox.y * scale)
            drawRect(
                color = Color(0xFF69F0AE),
                topLeft = topLeft,
                size = Size(d.bbox.width * scale, d.bbox.height * scale),
                style = Stroke(width = 3.dp.toPx()),
            )
            if (d.text.isNotEmpty()) {
                val y = (topLeft.y - 22.sp.toPx()).coerceAtLeast(0f)
                drawText(measurer, d.text, Offset(topLeft.x.coerceAtLeast(0f), y), label)
            }
        }
    }
}

/** The consensus reads of the last vehicle passes (on screen only, never logged). */
@Composable
private fun RecentReads(reads: List<PlateReadEvent>, modifier: Modifier) {
    if (reads.isEmpty()) return
    Column(
        modifier.background(Color.Black.copy(alpha = 0.6f), MaterialTheme.shapes.small).padding(8.dp),
        verticalArrangement = Arrangement.spacedBy(2.dp),
    ) {
        for (r in reads) {
            Text(
                buildString {
                    append(r.plate)
                    r.state?.let { append("  ").append(it) }
                    append("  ").append((r.confidence * 100).toInt()).append('%')
                },
                color = Color.White,
                fontFamily = FontFamily.Monospace,
            )
        }
    }
}
