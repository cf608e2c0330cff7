// Sign-in screen: user and password, and the server's rules of behaviour with an explicit acknowledgement when it has them.
package app.platewatch.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.heightIn
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Checkbox
import androidx.compose.material3.CircularProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedCard
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.text.input.PasswordVisualTransformation
import androidx.compose.ui.unit.dp
import app.platewatch.app.UiState

@Composable
fun LoginScreen(
    state: UiState,
    serverUrl: String,
    onSignIn: (user: String, password: String, acknowledged: Boolean) -> Unit,
    onSettings: () -> Unit,
) {
    var user by rememberSaveable { mutableStateOf("") }
    // Not saveable: the password is never written to the saved instance state.
    var password by remember { mutableStateOf("") }
    var acknowledged by remember(state.rules?.version) { mutableStateOf(false) }
    val rules = state.rules

    Column(
        Modifier.fillMaxSize().verticalScroll(rememberScrollState()).padding(24.dp),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("Platewatch", style = MaterialTheme.typography.headlineMedium)
        Text(serverUrl.ifBlank { "No server configured" }, style = MaterialTheme.typography.bodySmall)
        OutlinedTextField(
            value = user,
            onValueChange = { user = it },
            label = { Text("User") },
            singleLine = true,
            enabled = !state.busy,
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedTextField(
            value = password,
            onValueChange = { password = it },
            label = { Text("Password") },
            singleLine = true,
            visualTransformation = PasswordVisualTransformation(),
            keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Password),
            enabled = !state.busy,
            modifier = Modifier.fillMaxWidth(),
        )
        if (rules != null) {
            Text("Rules of behaviour, version ${rules.version}", style = MaterialTheme.typography.titleMedium)
            OutlinedCard(Modifier.fillMaxWidth()) {
                Text(
                    rules.text,
                    Modifier.heightIn(max = 320.dp).verticalScroll(rememberScrollState()).padding(12.dp),
                    style = MaterialTheme.typography.bodyMedium,
                )
            }
            Row(verticalAlignment = Alignment.CenterVertically) {
                Checkbox(checked = acknowledged, onCheckedChange = { acknowledged = it }, enabled = !state.busy)
                Text("I have read these rules of behaviour and will follow them")
            }
        }
        Button(
            onClick = { onSignIn(user, password, acknowledged) },
            enabled = !state.busy && serverUrl.isNotBlank() && user.isNotBlank() && password.isNotEmpty() &&
                (rules == null || acknowledged),
            modifier = Modifier.fillMaxWidth(),
        ) {
            Text(if (rules == null) "Sign in" else "Acknowledge and sign in")
        }
        TextButton(onClick = onSettings, enabled = !state.busy) { Text("Settings") }
        if (state.busy) CircularProgressIndicator()
    }
}
