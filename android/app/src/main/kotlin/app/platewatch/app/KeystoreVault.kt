// Secrets at rest: an Android Keystore AES-GCM key wraps the 32-byte image key and the device token.
package app.platewatch.app

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.io.File
import java.security.KeyStore
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The wrapping key never leaves the Keystore; what it wraps is kept in noBackupFilesDir (never
 * backed up or moved to another device, where the Keystore key would not exist anyway).
 */
class KeystoreVault(private val context: Context) {

    /** Seals `plain`: `[1][iv length][iv][ciphertext + tag]`. */
    fun seal(plain: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, wrappingKey())
        val iv = cipher.iv
        return byteArrayOf(FORMAT, iv.size.toByte()) + iv + cipher.doFinal(plain)
    }

    /** Opens what [seal] produced; throws if it was not sealed by this device's key. */
    fun open(sealed: ByteArray): ByteArray {
        require(sealed.size > 2 && sealed[0] == FORMAT) { "not a sealed secret" }
        val ivLength = sealed[1].toInt()
        require(ivLength in 12..16 && sealed.size > 2 + ivLength) { "not a sealed secret" }
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, wrappingKey(), GCMParameterSpec(128, sealed, 2, ivLength))
        return cipher.doFinal(sealed, 2 + ivLength, sealed.size - 2 - ivLength)
    }

    /**
     * The image key passed to the scanner as `image_key`: created (random, 32 bytes) on first
     * use and stored wrapped. Fails rather than making a new key when the stored one cannot be
     * opened, because images sealed under the old key would become unreadable.
     */
    @Synchronized
    fun imageKey(): ByteArray {
        val file = File(context.noBackupFilesDir, IMAGE_KEY_FILE)
        if (file.exists()) {
            val key = try {
                open(file.readBytes())
            } catch (e: Exception) {
                throw IllegalStateException(
                    "the image key cannot be unwrapped (Keystore key missing or changed); " +
                        "images already stored cannot be read",
                    e,
                )
            }
            check(key.size == 32) { "the stored image key has the wrong size" }
            return key
        }
        val key = ByteArray(32).also { SecureRandom().nextBytes(it) }
        val tmp = File(file.parentFile, "$IMAGE_KEY_FILE.tmp")
        tmp.writeBytes(seal(key))
        check(tmp.renameTo(file)) { "cannot store the image key" }
        return key
    }

    private fun wrappingKey(): SecretKey {
        val keyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }
        (keyStore.getKey(ALIAS, null) as? SecretKey)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, ANDROID_KEYSTORE)
        generator.init(
            KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .build(),
        )
        return generator.generateKey()
    }

    private companion object {
        const val ANDROID_KEYSTORE = "AndroidKeyStore"
        const val ALIAS = "platewatch.wrap.v1"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IMAGE_KEY_FILE = "image-key.sealed"
        const val FORMAT: Byte = 1
    }
}
