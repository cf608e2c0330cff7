// Sound (ToneGenerator) and vibration when a hot list alert arrives; more insistent for high priorities.
package app.platewatch.app

import android.content.Context
import android.media.AudioManager
import android.media.ToneGenerator
import android.os.Build
import android.os.VibrationEffect
import android.os.Vibrator
import android.os.VibratorManager

class AlertSignal(context: Context) {
    private val tone: ToneGenerator? = runCatching { ToneGenerator(AudioManager.STREAM_ALARM, 100) }.getOrNull()

    private val vibrator: Vibrator? = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
        context.getSystemService(VibratorManager::class.java)?.defaultVibrator
    } else {
        @Suppress("DEPRECATION")
        context.getSystemService(Vibrator::class.java)
    }

    /** `priority` is the best match's 0..100. */
    fun alert(priority: Int) {
        val urgent = priority >= URGENT
        tone?.startTone(
            if (urgent) ToneGenerator.TONE_CDMA_ALERT_CALL_GUARD else ToneGenerator.TONE_PROP_BEEP2,
            if (urgent) 1_500 else 600,
        )
        if (vibrator?.hasVibrator() == true) {
            val pattern = if (urgent) longArrayOf(0, 400, 150, 400, 150, 400) else longArrayOf(0, 300)
            vibrator.vibrate(VibrationEffect.createWaveform(pattern, -1))
        }
    }

    fun release() {
        tone?.release()
    }

    companion object {
        /** Priorities at or above this are shown in red and signalled insistently. */
        const val URGENT = 70
    }
}
