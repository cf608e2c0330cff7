// The single activity: hosts the Compose UI over the ViewModel that owns the Scanner.
package app.platewatch.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import app.platewatch.app.ui.PlatewatchApp

class MainActivity : ComponentActivity() {
    private val viewModel: PlatewatchViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { PlatewatchApp(viewModel) }
    }
}
