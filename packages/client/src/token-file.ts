import { readSecretFile } from '@mirrorcast/wire'
import { ClientError, ClientErrorCode } from './errors.js'

/**
 * A client's token file holds one access token: the first line that is not
 * a `#` comment. Refused if the group or others can read it.
 */
export async function readTokenFile (file: string): Promise<string> {
  let text: string
  try {
    text = await readSecretFile(file, 'token file')
  } catch (err) {
    throw new ClientError(ClientErrorCode.TOKEN_FILE, (err as Error).message, { cause: err })
  }
  const token = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).find((l) => l !== '')
  if (token === undefined || /\s/.test(token)) throw new ClientError(ClientErrorCode.TOKEN_FILE, `token file ${file} must hold one token on a line of its own`)
  return token
}
