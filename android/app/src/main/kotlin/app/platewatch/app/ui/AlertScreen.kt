// Alert screen: the plate crop beside the read, each matched list with its priority colour and staleness; accept, reject with a reason, or correct.
package app.platewatch.app.ui

import android.graphics.BitmapFactory
import androidx.compose.foundation.Image
import androidx.compose.foundation.background
import androidx.compose.foundation.border
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.ExperimentalLayoutApi
import androidx.compose.foundation.layout.FlowRow
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.heightIn
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.AssistChip
import androidx.compose.material3.Button
import androidx.compose.material3.ButtonDefaults
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.text.font.FontWeight
import androidx.compose.ui.unit.dp
import app.platewatch.app.AlertSignal
import app.platewatch.ffi.AlertEvent
import app.platewatch.ffi.AlertMatch
import app.platewatch.ffi.MatchKind

private enum class Step { DECIDE, REJECT, CORRECT }

/** Reasons offered for a rejection (free text is allowed too). */
private val REJECT_REASONS = listOf(
    "Not the listed vehicle",
    "Plate misread",
    "State does not match",
    "Vehicle does not match the description",
)

fun priorityColor(priority: Int): Color = when {
    priority >= AlertSignal.URGENT -> Color(0xFFD32F2F)
    priority >= 40 -> Color(0xFFF57C00)
    else -> Color(0xFFFBC02D)
}

@OptIn(ExperimentalLayoutApi::class)
@Composable
fun AlertScreen(
    alert: AlertEvent,
    waiting: Int,
    onAccept: (AlertEvent) -> Unit,
    onReject: (AlertEvent, String) -> Unit,
    onCorrect: (AlertEvent, String) -> Unit,
) {
    val top = alert.matches.maxByOrNull { it.priority }
    val colour = priorityColor(top?.priority?.toInt() ?: 0)
    val crop = remember(alert.alertId) {
        BitmapFactory.decodeByteArray(alert.cropPng, 0, alert.cropPng.size)?.asImageBitmap()
    }
    var step by remember(alert.alertId) { mutableStateOf(Step.DECIDE) }
    var reason by remember(alert.alertId) { mutableStateOf("") }
    var corrected by remember(alert.alertId) { mutableStateOf(alert.read.plate) }

    Surface(Modifier.fillMaxSize(), color = MaterialTheme.colorScheme.background) {
        Column(
            Modifier.fillMaxSize().verticalScroll(rememberScrollState()).padding(16.dp),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            Text(
                (if (alert.retro) "HOT LIST ALERT (RETRO-HIT)" else "HOT LIST ALERT") +
                    if (waiting > 0) "  (+$waiting waiting)" else "",
                Modifier.fillMaxWidth().background(colour).padding(12.dp),
                color = Color.White,
                style = MaterialTheme.typography.titleLarge,
                fontWeight = FontWeight.Bold,
            )
            // Human verification: the crop and the read side by side.
            Row(horizontalArrangement = Arrangement.spacedBy(16.dp), verticalAlignment = Alignment.CenterVertically) {
                if (crop != null) {
                    Image(
                        bitmap = crop,
                        contentDescription = "Plate image",
                        modifier = Modifier.weight(1f).heightIn(min = 72.dp, max = 160.dp).border(2.dp, colour),
                        contentScale = ContentScale.Fit,
                        filterQuality = FilterQuality.None,
                    )
                } else {
                    Text("No plate image: verify the vehicle directly", Modifier.weight(1f), color = Color.Red)
                }
                Column(Modifier.weight(1f)) {
                    Text(
                        alert.read.plate,
                        style = MaterialTheme.typography.headlineLarge,
                        fontFamily = FontFamily.Monospace,
                        fontWeight = FontWeight.Bold,
                    )
                    alert.read.state?.let { Text("State $it") }
                    if (alert.retro) {
                        // Seen before the entry was listed: the vehicle may be long gone.
                        Text("Seen ${java.text.DateFormat.getDateTimeInstance().format(java.util.Date(alert.read.lastSeenMs))}, before it was listed")
                        Text("Read confidence ${(alert.read.confidence * 100).toInt()}%")
                    } else {
                        Text("Read confidence ${(alert.read.confidence * 100).toInt()}% over ${alert.read.frames} frames")
                    }
                }
            }
            for (m in alert.matches) MatchRow(m)

            when (step) {
                Step.DECIDE -> Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    Button(
                        onClick = { onAccept(alert) },
                        colors = ButtonDefaults.buttonColors(containerColor = Color(0xFF2E7D32)),
                    ) { Text("Confirm match") }
                    OutlinedButton(onClick = { step = Step.REJECT }) { Text("Reject") }
                    TextButton(onClick = { step = Step.CORRECT }) { Text("Correct the read") }
                }
                Step.REJECT -> {
                    Text("Why is this not a match?", style = MaterialTheme.typography.titleMedium)
                    FlowRow(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                        for (r in REJECT_REASONS) AssistChip(onClick = { reason = r }, label = { Text(r) })
                    }
                    OutlinedTextField(
                        value = reason,
                        onValueChange = { reason = it },
                        label = { Text("Reason") },
                        modifier = Modifier.fillMaxWidth(),
                    )
                    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                        Button(onClick = { onReject(alert, reason.trim()) }, enabled = reason.isNotBlank()) {
                            Text("Reject alert")
                        }
                        TextButton(onClick = { step = Step.DECIDE }) { Text("Back") }
                    }
                }
                Step.CORRECT -> {
                    Text(
                        "The plate on the image reads differently: enter it as it is. The alert is " +
                            "rejected as a misread and your reading is kept.",
                    )
                    OutlinedTextField(
                        value = corrected,
                        onValueChange = { corrected = it.uppercase().filter { c -> c.isLetterOrDigit() } },
                        label = { Text("Plate as read by you") },
                        singleLine = true,
                        modifier = Modifier.fillMaxWidth(),
                    )
                    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                        Button(
                            onClick = { onCorrect(alert, corrected) },
                            enabled = corrected.isNotBlank() && corrected != alert.read.plate,
                        ) { Text("Save correction") }
                        TextButton(onClick = { step = Step.DECIDE }) { Text("Back") }
                    }
                }
            }
        }
    }
}

@Composable
private fun MatchRow(m: AlertMatch) {
    val colour = priorityColor(m.priority.toInt())
    Column(Modifier.fillMaxWidth().border(2.dp, colour).padding(8.dp)) {
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp), verticalAlignment = Alignment.CenterVertically) {
            Text(
                "P${m.priority}",
                Modifier.background(colour).padding(horizontal = 6.dp, vertical = 2.dp),
                color = Color.White,
                fontWeight = FontWeight.Bold,
            )
            Text("${m.list} · ${m.category.replace('_', ' ')}", fontWeight = FontWeight.Bold)
        }
        Text(
            "Listed plate ${m.entryPlate} · ${kind(m.kind)} · score ${"%.2f".format(m.score)}",
            fontFamily = FontFamily.Monospace,
        )
        if (m.stale) {
            Text(
                "STALE LIST: ${age(m.listAgeSecs)} old, the entry may no longer be valid",
                color = Color(0xFFD32F2F),
                fontWeight = FontWeight.Bold,
            )
        }
    }
}

private fun kind(k: MatchKind) = when (k) {
    MatchKind.EXACT -> "exact"
    MatchKind.LOOK_ALIKE -> "look-alike characters"
    MatchKind.ONE_EDIT -> "one character different"
    MatchKind.WILDCARD -> "wildcard entry"
}
