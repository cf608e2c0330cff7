// Settings screen: server URL, fallback reason codes, the pinned hot list key (or trust on first use), detection/read/alert thresholds and the upload interval.
package app.platewatch.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Checkbox
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.unit.dp
import app.platewatch.app.Settings
import app.platewatch.ffi.hotlistKeyId

@Composable
fun SettingsScreen(settings: Settings, onSave: (Settings) -> Unit, onCancel: () -> Unit) {
    var server by remember(settings) { mutableStateOf(settings.serverUrl) }
    var reasons by remember(settings) { mutableStateOf(settings.reasonCodes.joinToString(", ")) }
    var alert by remember(settings) { mutableStateOf(number(settings.alertThreshold)) }
    var read by remember(settings) { mutableStateOf(number(settings.minReadConfidence)) }
    var detector by remember(settings) { mutableStateOf(number(settings.detectorThreshold)) }
    var interval by remember(settings) { mutableStateOf(settings.syncIntervalSec.toString()) }
    var key by remember(settings) { mutableStateOf(settings.hotlistKey) }
    var trust by remember(settings) { mutableStateOf(settings.trustServerKey) }
    // The key's id for comparison with the operator's, or null when it is not a valid key.
    val keyId = remember(key) { key.trim().takeIf { it.isNotEmpty() }?.let { runCatching { hotlistKeyId(it) }.getOrNull() } }

    val edited = Settings(
        serverUrl = server.trim().trimEnd('/'),
        reasonCodes = reasons.split(",").map { it.trim() }.filter { it.isNotEmpty() }.distinct(),
        alertThreshold = alert.toFloatOrNull() ?: -1f,
        minReadConfidence = read.toFloatOrNull() ?: -1f,
        detectorThreshold = detector.toFloatOrNull() ?: -1f,
        syncIntervalSec = interval.toIntOrNull() ?: 0,
        hotlistKey = key.trim(),
        trustServerKey = trust,
    )
    val problem = edited.problem() ?: "The hot list key is not a valid publisher key".takeIf { key.isNotBlank() && keyId == null }

    Column(
        Modifier.fillMaxSize().verticalScroll(rememberScrollState()).padding(24.dp),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("Settings", style = MaterialTheme.typography.headlineSmall)
        OutlinedTextField(
            value = server,
            onValueChange = { server = it },
            label = { Text("Server URL (https://…)") },
            singleLine = true,
            keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Uri),
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedTextField(
            value = reasons,
            onValueChange = { reasons = it },
            label = { Text("Reason codes until the server's are fetched (comma separated)") },
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedTextField(
            value = key,
            onValueChange = { key = it },
            label = { Text("Hot list publisher key (base64, from the operator)") },
            supportingText = { Text(keyId?.let { "Key id $it" } ?: "Every hot list must be signed with this key") },
            modifier = Modifier.fillMaxWidth(),
        )
        Row(verticalAlignment = Alignment.CenterVertically) {
            Checkbox(checked = trust, onCheckedChange = { trust = it }, enabled = key.isBlank())
            Text("Without a key: trust the server's key at the first sign-in and keep it (trust on first use)")
        }
        Text(
            "Thresholds between 0 and 1; 0 keeps the engine's default " +
                "(alert score 0.5, read confidence 0.5, detector score 0.15).",
            style = MaterialTheme.typography.bodySmall,
        )
        Threshold("Alert score", alert) { alert = it }
        Threshold("Minimum read confidence", read) { read = it }
        Threshold("Detector score", detector) { detector = it }
        OutlinedTextField(
            value = interval,
            onValueChange = { interval = it },
            label = { Text("Upload every (seconds)") },
            singleLine = true,
            keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Number),
            modifier = Modifier.fillMaxWidth(),
        )
        problem?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = { onSave(edited) }, enabled = problem == null) { Text("Save") }
            TextButton(onClick = onCancel) { Text("Cancel") }
        }
    }
}

@Composable
private fun Threshold(label: String, value: String, onChange: (String) -> Unit) {
    OutlinedTextField(
        value = value,
        onValueChange = onChange,
        label = { Text(label) },
        singleLine = true,
        keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Decimal),
        modifier = Modifier.fillMaxWidth(),
    )
}

private fun number(v: Float) = if (v == 0f) "0" else v.toString()
