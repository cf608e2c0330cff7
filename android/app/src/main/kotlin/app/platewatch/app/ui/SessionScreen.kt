// Session form: reason code, case number or justification, on-behalf-of; starts scanning. Also upload and hot list status.
package app.platewatch.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.selection.selectable
import androidx.compose.foundation.selection.selectableGroup
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.CircularProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.RadioButton
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.semantics.Role
import androidx.compose.ui.unit.dp
import app.platewatch.app.UiState

@Composable
fun SessionScreen(
    state: UiState,
    reasonCodes: List<String>,
    onStart: (reasonCode: String, caseNumber: String, justification: String, onBehalfOf: String) -> Unit,
    onSync: () -> Unit,
    onSettings: () -> Unit,
    onSignOut: () -> Unit,
) {
    // No default: the officer picks the reason explicitly.
    var reason by rememberSaveable { mutableStateOf("") }
    var caseNumber by rememberSaveable { mutableStateOf("") }
    var justification by rememberSaveable { mutableStateOf("") }
    var onBehalfOf by rememberSaveable { mutableStateOf("") }
    val complete = reason in reasonCodes && (caseNumber.isNotBlank() || justification.isNotBlank())

    Column(
        Modifier.fillMaxSize().verticalScroll(rememberScrollState()).padding(24.dp),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("New scanning session", style = MaterialTheme.typography.headlineSmall)
        Text("Signed in as ${state.user.orEmpty()}", style = MaterialTheme.typography.bodySmall)
        StatusBar(state)

        Text("Reason code", style = MaterialTheme.typography.titleMedium)
        Column(Modifier.selectableGroup()) {
            for (code in reasonCodes) {
                Row(
                    Modifier.fillMaxWidth()
                        .selectable(selected = reason == code, onClick = { reason = code }, role = Role.RadioButton)
                        .padding(vertical = 4.dp),
                    verticalAlignment = Alignment.CenterVertically,
                ) {
                    RadioButton(selected = reason == code, onClick = null)
                    Text(code, Modifier.padding(start = 8.dp))
                }
            }
        }
        OutlinedTextField(
            value = caseNumber,
            onValueChange = { caseNumber = it },
            label = { Text("Case number") },
            singleLine = true,
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedTextField(
            value = justification,
            onValueChange = { justification = it },
            label = { Text("Justification (when there is no case number)") },
            minLines = 2,
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedTextField(
            value = onBehalfOf,
            onValueChange = { onBehalfOf = it },
            label = { Text("On behalf of (user name, optional)") },
            singleLine = true,
            modifier = Modifier.fillMaxWidth(),
        )
        if (!complete) {
            Text(
                "A reason code and a case number or a justification are required.",
                style = MaterialTheme.typography.bodySmall,
            )
        }
        Button(
            onClick = { onStart(reason, caseNumber, justification, onBehalfOf) },
            enabled = complete && !state.busy,
            modifier = Modifier.fillMaxWidth(),
        ) { Text("Start scanning") }
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            OutlinedButton(onClick = onSync, enabled = !state.busy && !state.syncing) { Text("Upload now") }
            TextButton(onClick = onSettings, enabled = !state.busy) { Text("Settings") }
            TextButton(onClick = onSignOut, enabled = !state.busy) { Text("Sign out") }
        }
        if (state.busy) CircularProgressIndicator()
    }
}
