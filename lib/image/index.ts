/** The image pipeline (sharp decode, Pillow-exact bilinear resize) and the image store the native core memory-maps. */
export {
  prepareImageStore,
  openImageStore,
  formatImageStoreReport,
  describeImageStatus,
  droppedItems,
  IMAGE_STATUS,
  ImageStatusCode,
  ImageStatusReason,
  ImageStatusOutcome,
  ImageStore,
  ImageStoreOptions,
  ImageStoreReport,
  MissingImagePolicy,
  MISSING_IMAGE_POLICIES,
  IMAGE_STORE_FORMAT,
  IMAGE_STORE_VERSION,
  PIXEL_FILE,
  INDEX_FILE,
  REPORT_FILE,
  PROGRESS_FILE,
} from './store';
export { decodeImage, ResizeRule, RESIZE_RULES, RESIZE_RULE_TEXT, DECODE_TEXT } from './decode';
export { resizeBilinearPil, hwcToChw } from './resize';
