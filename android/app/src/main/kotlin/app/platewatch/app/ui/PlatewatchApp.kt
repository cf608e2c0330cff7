// Root composable: the current screen from the ViewModel's state, alerts above everything, messages at the bottom.
package app.platewatch.app.ui

import androidx.activity.compose.BackHandler
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import app.platewatch.app.PlatewatchViewModel
import app.platewatch.app.Screen

@Composable
fun PlatewatchApp(vm: PlatewatchViewModel) {
    val state by vm.state.collectAsStateWithLifecycle()
    val settings by vm.settings.collectAsStateWithLifecycle()

    BackHandler(enabled = state.screen == Screen.SETTINGS) { vm.closeSettings() }
    BackHandler(enabled = state.screen == Screen.CAMERA && state.alerts.isEmpty()) { vm.endSession() }

    MaterialTheme {
        Box(Modifier.fillMaxSize()) {
            Surface(Modifier.fillMaxSize()) {
                when (state.screen) {
                    Screen.LOGIN -> LoginScreen(
                        state = state,
                        serverUrl = settings.serverUrl,
                        onSignIn = { user, password, acknowledged -> vm.signIn(user, password, acknowledged) },
                        onSettings = { vm.openSettings() },
                    )
                    Screen.SESSION -> SessionScreen(
                        state = state,
                        // The server's list once fetched after sign-in; the settings' until then.
                        reasonCodes = state.reasonCodes.ifEmpty { settings.reasonCodes },
                        onStart = { reason, case, justification, onBehalfOf ->
                            vm.startSession(reason, case, justification, onBehalfOf)
                        },
                        onSync = { vm.syncNow() },
                        onSettings = { vm.openSettings() },
                        onSignOut = { vm.signOut() },
                    )
                    Screen.CAMERA -> CameraScreen(
                        vm = vm,
                        state = state,
                        onSync = { vm.syncNow() },
                        onEnd = { vm.endSession() },
                    )
                    Screen.SETTINGS -> SettingsScreen(
                        settings = settings,
                        onSave = { vm.saveSettings(it) },
                        onCancel = { vm.closeSettings() },
                    )
                }
            }
            state.alerts.firstOrNull()?.let { alert ->
                AlertScreen(
                    alert = alert,
                    waiting = state.alerts.size - 1,
                    onAccept = { vm.accept(it) },
                    onReject = { a, reason -> vm.reject(a, reason) },
                    onCorrect = { a, plate -> vm.correct(a, plate) },
                )
            }
            state.message?.let { message ->
                Surface(
                    color = MaterialTheme.colorScheme.errorContainer,
                    modifier = Modifier.align(Alignment.BottomCenter).fillMaxWidth().padding(8.dp),
                    shape = MaterialTheme.shapes.medium,
                ) {
                    Row(Modifier.padding(start = 12.dp), verticalAlignment = Alignment.CenterVertically) {
                        Text(message, Modifier.weight(1f), color = MaterialTheme.colorScheme.onErrorContainer)
                        TextButton(onClick = { vm.dismissMessage() }) { Text("OK") }
                    }
                }
            }
        }
    }
}
