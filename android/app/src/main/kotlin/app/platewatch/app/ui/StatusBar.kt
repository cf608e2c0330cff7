// Status strip: encounters waiting to upload, hot list age and staleness, sync activity and frame counters.
package app.platewatch.app.ui

import androidx.compose.foundation.background
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.FlowRow
import androidx.compose.foundation.layout.ExperimentalLayoutApi
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.text.font.FontWeight
import androidx.compose.ui.unit.dp
import app.platewatch.app.UiState

@OptIn(ExperimentalLayoutApi::class)
@Composable
fun StatusBar(state: UiState, modifier: Modifier = Modifier) {
    FlowRow(
        modifier.background(Color.Black.copy(alpha = 0.6f), MaterialTheme.shapes.small).padding(8.dp),
        horizontalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        val uploads = state.uploads
        Text(
            when {
                uploads == null -> "Uploads: …"
                uploads.rejected > 0 -> "To upload: ${uploads.pending} · refused by server: ${uploads.rejected}"
                else -> "To upload: ${uploads.pending}"
            },
            color = if ((uploads?.pending ?: 0L) > 0L) Color(0xFFFFD54F) else Color.White,
        )

        val lists = state.hotlists
        val stale = lists.filter { it.stale }
        val (text, color) = when {
            lists.isEmpty() -> "No hot lists on this device" to Color(0xFFFF5252)
            stale.isNotEmpty() -> "STALE LIST: ${stale.joinToString { "${it.name} (${age(it.ageSecs)})" }}" to Color(0xFFFF5252)
            else -> "Hot lists ${age(lists.maxOf { it.ageSecs })} old" to Color.White
        }
        Text(text, color = color, fontWeight = if (color == Color.White) FontWeight.Normal else FontWeight.Bold)

        if (state.syncing) Text("Uploading…", color = Color.White)
        state.stats?.let { s ->
            Text("%.0f ms/frame · dropped %d".format(s.lastInferenceMs, s.dropped.toLong()), color = Color.White)
        }
    }
}

/** "45 s", "12 min", "5 h", "3 d". */
fun age(secs: Long): String = when {
    secs < 120 -> "$secs s"
    secs < 2 * 3600 -> "${secs / 60} min"
    secs < 2 * 86400 -> "${secs / 3600} h"
    else -> "${secs / 86400} d"
}
