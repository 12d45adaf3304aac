import { panel } from '../state';
import { Icon } from './Icon';

/** Back to the chat list from a pane: at phone size the pane hides the list. */
export function PaneBack() {
  return <button class="icon back paneback" aria-label="Back to chats" data-testid="pane-back" onClick={() => { panel.value = ''; }}><Icon name="back" /></button>;
}
